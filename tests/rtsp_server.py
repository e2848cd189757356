"""A live H.264 RTSP camera for the camera tests: gst-rtsp-server (Debian's
gir1.2-gst-rtsp-server-1.0) serving a test pattern at rtsp://127.0.0.1:PORT/cam.
Run with the system python (/usr/bin/python3, which has gi). Prints "ready" when it listens.

usage: rtsp_server.py PORT [FPS]
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

port, fps = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10
Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
# A key frame every second, so a client that (re)connects gets a picture quickly.
factory.set_launch(
    f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate={fps}/1 "
    f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} "
    "! rtph264pay name=pay0 pt=96 config-interval=1 )"
)
factory.set_shared(True)
server.get_mount_points().add_factory("/cam", factory)
if server.attach(None) == 0:
    sys.exit(f"cannot listen on 127.0.0.1:{port}")
print("ready", flush=True)
GLib.MainLoop().run()
