"""Copying audio and subtitle packets from the source into the output without re-encoding."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import av.error

from spikedeblur.video.info import open_video_container

logger = logging.getLogger(__name__)

# Text subtitle codecs that FFmpeg can convert to MP4's only text subtitle codec, mov_text.
_TEXT_SUBTITLE_CODECS = frozenset({"subrip", "srt", "ass", "ssa", "webvtt", "text", "mov_text"})


class StreamCopier:
    """Mux the source's audio and subtitle packets into ``output``, interleaved with the video by time.

    Call :meth:`copy_until` with each video frame's time, then :meth:`copy_rest` at the end. Copied
    packets then stay close in time to the video packets, which keeps the muxer's interleaving
    buffer small.
    Packets keep their source timestamps, so any start offset between audio and video is kept.
    """

    def __init__(
        self, source: Path, output: av.container.OutputContainer, *, copy_audio: bool, copy_subtitles: bool
    ) -> None:
        self._stack = open_video_container(source)
        self._input = self._stack.__enter__()
        self._mapping: dict[int, av.stream.Stream] = {}
        self._subtitle_converters: dict[int, _SubtitleConverter] = {}
        try:
            self._add_streams(output, copy_audio=copy_audio, copy_subtitles=copy_subtitles)
        except BaseException:
            self.close()
            raise
        self._packets = self._demux() if self._mapping else iter(())
        self._pending: av.Packet | None = None

    def _add_streams(self, output: av.container.OutputContainer, *, copy_audio: bool, copy_subtitles: bool) -> None:
        supported = output.supported_codecs
        for stream in self._input.streams:
            wanted = (stream.type == "audio" and copy_audio) or (stream.type == "subtitle" and copy_subtitles)
            if not wanted:
                continue
            codec = stream.codec_context.name if stream.codec_context is not None else stream.codec.name
            label = f"{stream.type} stream {stream.index} ({codec})"
            if codec in supported:
                self._mapping[stream.index] = output.add_stream_from_template(stream)
                logger.debug("copying %s", label)
            elif stream.type == "subtitle" and codec in _TEXT_SUBTITLE_CODECS and "mov_text" in supported:
                converter = _SubtitleConverter(stream, output)
                self._mapping[stream.index] = converter.output_stream
                self._subtitle_converters[stream.index] = converter
                logger.info("converting %s to mov_text, the only text subtitle codec of %s", label, output.format.name)
            else:
                logger.warning("skipping %s: the %s container cannot hold it", label, output.format.name)

    @property
    def stream_count(self) -> int:
        return len(self._mapping)

    def _demux(self):
        streams = [stream for stream in self._input.streams if stream.index in self._mapping]
        try:
            for packet in self._input.demux(streams):
                if packet.size == 0:
                    continue  # the demuxer's flush packet carries no data
                yield packet
        except av.error.FFmpegError as error:
            logger.warning("copying audio/subtitles stopped early: %s", error.strerror or error)

    def copy_until(self, time_s: float, output: av.container.OutputContainer) -> None:
        """Mux every copied packet whose timestamp is at or before ``time_s`` seconds."""
        while True:
            packet = self._pending if self._pending is not None else next(self._packets, None)
            self._pending = None
            if packet is None:
                return
            timestamp = packet.dts if packet.dts is not None else packet.pts
            if timestamp is not None and float(timestamp * packet.time_base) > time_s:
                self._pending = packet
                return
            self._mux(packet, output)

    def copy_rest(self, output: av.container.OutputContainer) -> None:
        """Mux every copied packet not yet written."""
        self.copy_until(float("inf"), output)

    def _mux(self, packet: av.Packet, output: av.container.OutputContainer) -> None:
        index = packet.stream.index
        converter = self._subtitle_converters.get(index)
        if converter is not None:
            for converted in converter.convert(packet):
                output.mux(converted)
            return
        packet.stream = self._mapping[index]
        output.mux(packet)

    def close(self) -> None:
        self._stack.__exit__(None, None, None)


class _SubtitleConverter:
    """Decode text subtitle packets and encode them as mov_text for MP4 and MOV outputs."""

    def __init__(self, stream: av.stream.Stream, output: av.container.OutputContainer) -> None:
        self._decoder = stream.codec_context
        # The mov_text encoder needs the ASS header that the text decoder builds when it opens.
        if not self._decoder.is_open:
            self._decoder.open()
        self.output_stream = output.add_stream("mov_text")
        self.output_stream.time_base = stream.time_base
        self.output_stream.codec_context.time_base = stream.time_base
        if self._decoder.subtitle_header:
            self.output_stream.codec_context.subtitle_header = self._decoder.subtitle_header
        language = stream.metadata.get("language")
        if language:
            self.output_stream.metadata["language"] = language
        self._time_base = stream.time_base

    def convert(self, packet: av.Packet) -> list[av.Packet]:
        subtitles = self._decoder.decode2(packet)
        if subtitles is None:
            return []
        encoded = self.output_stream.codec_context.encode_subtitle(subtitles)
        encoded.stream = self.output_stream
        encoded.pts = packet.pts
        encoded.dts = packet.pts
        encoded.duration = packet.duration
        encoded.time_base = self._time_base
        return [encoded]
