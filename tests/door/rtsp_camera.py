"""An RTSP camera on loopback for the tests: GStreamer's RTSP server (gst-rtsp-server, what many
real setups restream cameras with) playing folders of JPEG frames, one folder per connection, at
FPS frames per second, as RTP/JPEG or, like most IP cameras, H.264; a connection after the last
folder is refused, like a camera gone.

Run with a Python that has PyGObject and GStreamer's RTSP server (Debian: python3-gi,
gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-good; H.264 also gstreamer1.0-plugins-ugly):

    /usr/bin/python3 rtsp_camera.py jpeg|h264 FPS WIDTH HEIGHT FOLDER...   # prints its port, serves /door
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


#: The RTP payload of each codec: JPEG frames as they are, or decoded and encoded as H.264 with a
#: key frame every 5 frames and the stream's parameters repeated, as cameras send them.
PAYLOADS = {"jpeg": "rtpjpegpay name=pay0 pt=26",
            "h264": "jpegdec ! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=5 "
                    "! rtph264pay name=pay0 pt=96 config-interval=1"}


class Clips(GstRtspServer.RTSPMediaFactory):
    """Each new connection plays the next folder's 00000.jpg, 00001.jpg, ... once, paced at ``fps``."""

    def __init__(self, codec, folders, fps, width, height):
        super().__init__()
        self.payload, self.folders, self.fps, self.size = PAYLOADS[codec], list(folders), fps, (width, height)

    def do_create_element(self, url):
        if not self.folders:
            return None                                   # the server answers 503: the camera is gone
        folder = self.folders.pop(0)
        width, height = self.size
        return Gst.parse_launch(
            f"( imagesequencesrc location={folder}/%05d.jpg start-index=0 framerate={self.fps}/1 "
            f'! capssetter caps="image/jpeg,width={width},height={height}" ! {self.payload} )')


def main(codec, fps, width, height, *folders):
    Gst.init(None)
    server = GstRtspServer.RTSPServer.new()
    server.set_address("127.0.0.1")
    server.set_service("0")                               # any free port; printed below
    server.get_mount_points().add_factory("/door", Clips(codec, folders, fps, width, height))
    server.attach(None)
    print(server.get_bound_port(), flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main(*sys.argv[1:])
