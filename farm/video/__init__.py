"""All PyAV work of farm, one module per concern: probe, decode, segments, mux, GIF (and colour).

Timestamps are the thread that ties the pipeline together: every frame keeps
the pts it had in the source (in the source stream's time base) through the
input segment, the stylization and the output segment, so the final MP4 has
the source's timing, VFR included, and the source's audio stays in sync when
it is stream-copied beside it.

The names other modules use are re-exported here: ``from farm import video;
video.probe(...)``.
"""

from farm.video.colour import Colour, hdr_note, to_uint8
from farm.video.decode import Frame, iter_frames, pad_even, read_all_frames, to_rgb
from farm.video.gif import GifInfo, make_gif
from farm.video.mux import check_concat_compatible, concat_segments, decode_timestamps
from farm.video.probe import VideoInfo, probe
from farm.video.remux import copy_packets, read_copied
from farm.video.segments import SEGMENT_EXT, SegmentClock, SegmentWriter, read_segment
from farm.video.shrink import shrink, shrunk_size

__all__ = [
    "SEGMENT_EXT", "Colour", "Frame", "GifInfo", "SegmentClock", "SegmentWriter", "VideoInfo", "check_concat_compatible",
    "concat_segments", "copy_packets", "decode_timestamps", "hdr_note", "iter_frames", "make_gif", "pad_even", "probe", "read_all_frames",
    "read_copied", "read_segment", "shrink", "shrunk_size", "to_rgb", "to_uint8",
]
