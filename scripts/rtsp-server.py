#!/usr/bin/python3
"""A local RTSP server for tests and demos: serves video files as looping *live* streams on 127.0.0.1.

Run with Debian's /usr/bin/python3 (python3-gi + GStreamer's RTSP server from apt; not the trainer's venv):

    /usr/bin/python3 scripts/rtsp-server.py --port 8554 --mount /d0=d0.mp4 --mount /d3=d3.mp4

Each mount behaves like a camera: a producer pipeline plays the file in a gapless loop in real time
(segment seeks, so running time keeps growing), and every connected RTSP client gets the H.264 access
units as they are produced (it joins mid-stream, like a real camera). Clients pull over TCP
(interleaved) or UDP.

Why a transcode first: the shared clips have one keyframe every ~250 frames and B-frames; a client that
joins mid-loop would wait seconds for an IDR. Each file is transcoded once with ffmpeg into a cached copy
with a keyframe every second and no B-frames (so one access unit = one frame, PTS = DTS).

Failure modes for watchdog tests:
  --hang-after S   after S seconds, stop sending media but keep every TCP connection and RTSP session open
  SIGUSR1          hang now (same thing);  SIGUSR2 resumes sending
Killing the process (SIGTERM / SIGKILL) is the "server killed" case.

Prints one line "ready rtsp://127.0.0.1:<port><mount> ..." on stdout once it listens.
"""

import argparse
import hashlib
import os
import signal
import subprocess
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstApp", "1.0")
from gi.repository import GLib, Gst, GstApp, GstRtspServer  # noqa: E402,F401

CACHE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".cache", "rtsp")


def log(msg):
    print(f"[rtsp-server] {msg}", file=sys.stderr, flush=True)


def transcode(path, gop):
    """Short-GOP, B-frame-free, video-only copy of `path`, cached by content hash and GOP."""
    with open(path, "rb") as f:
        digest = hashlib.sha1(f.read()).hexdigest()[:16]
    os.makedirs(CACHE_DIR, exist_ok=True)
    out = os.path.join(CACHE_DIR, f"{digest}-g{gop}.mp4")
    if os.path.exists(out):
        return out
    tmp = out + ".part.mp4"
    cmd = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", path, "-an",
        "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-bf", "0",
        "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-pix_fmt", "yuv420p", tmp,
    ]
    subprocess.run(cmd, check=True)
    os.replace(tmp, out)
    return out


class Feed:
    """One looping 'camera': file → H.264 access units in real time → every attached client appsrc."""

    def __init__(self, mount, path):
        self.mount = mount
        self.lock = threading.Lock()
        self.sinks = set()  # appsrc elements of connected clients
        self.hung = False
        self.pipeline = Gst.parse_launch(
            f'filesrc location="{path}" ! qtdemux ! h264parse config-interval=-1 ! '
            "video/x-h264,stream-format=byte-stream,alignment=au ! "
            "appsink name=out sync=true emit-signals=true max-buffers=4 drop=false"
        )
        self.appsink = self.pipeline.get_by_name("out")
        self.appsink.connect("new-sample", self.on_sample)
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self.on_message)
        self.started = False

    def start(self):
        self.pipeline.set_state(Gst.State.PAUSED)
        self.pipeline.get_state(Gst.CLOCK_TIME_NONE)
        # A flushing segment seek first; each SEGMENT_DONE then re-seeks without flushing, which loops
        # without a gap and keeps running time monotonic (appsink sync=true paces it in real time).
        self.pipeline.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.SEGMENT, 0)
        self.pipeline.set_state(Gst.State.PLAYING)

    def on_message(self, _bus, msg):
        if msg.type == Gst.MessageType.SEGMENT_DONE:
            self.pipeline.seek_simple(Gst.Format.TIME, Gst.SeekFlags.SEGMENT, 0)
        elif msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            log(f"{self.mount}: producer error: {err.message} ({dbg})")
            GLib.idle_add(lambda: sys.exit(1))

    def on_sample(self, sink):
        sample = sink.emit("pull-sample")
        if sample is None:
            return Gst.FlowReturn.ERROR
        if self.hung:
            return Gst.FlowReturn.OK
        buf = sample.get_buffer()
        with self.lock:
            targets = list(self.sinks)
        for appsrc in targets:
            # Each client's appsrc stamps the buffer with its own pipeline's running time (do-timestamp).
            out = buf.copy()
            out.pts = Gst.CLOCK_TIME_NONE
            out.dts = Gst.CLOCK_TIME_NONE
            out.duration = Gst.CLOCK_TIME_NONE
            appsrc.emit("push-buffer", out)
        return Gst.FlowReturn.OK

    def attach(self, appsrc):
        with self.lock:
            self.sinks.add(appsrc)

    def detach(self, appsrc):
        with self.lock:
            self.sinks.discard(appsrc)


class Factory(GstRtspServer.RTSPMediaFactory):
    def __init__(self, feed):
        super().__init__()
        self.feed = feed
        # One media per client keeps clients independent (one client's teardown never stalls another).
        self.set_shared(False)
        self.set_launch(
            "( appsrc name=src is-live=true format=time do-timestamp=true "
            "caps=video/x-h264,stream-format=byte-stream,alignment=au "
            "! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
        self.connect("media-configure", self.on_configure)

    def on_configure(self, _factory, media):
        appsrc = media.get_element().get_child_by_name("src")
        self.feed.attach(appsrc)
        media.connect("unprepared", lambda _m: self.feed.detach(appsrc))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8554)
    ap.add_argument("--mount", action="append", required=True, metavar="/NAME=FILE",
                    help="serve FILE as rtsp://host:port/NAME (repeatable)")
    ap.add_argument("--gop", type=int, default=25, help="keyframe interval of the served stream, frames")
    ap.add_argument("--hang-after", type=float, default=None, metavar="S",
                    help="stop sending media after S seconds, keeping connections open")
    args = ap.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    feeds = []
    for spec in args.mount:
        name, sep, path = spec.partition("=")
        if not sep or not name.startswith("/") or not path:
            ap.error(f"--mount wants /NAME=FILE, got {spec!r}")
        if not os.path.isfile(path):
            ap.error(f"--mount {name}: no such file: {path}")
        feed = Feed(name, transcode(path, args.gop))
        mounts.add_factory(name, Factory(feed))
        feeds.append(feed)

    if server.attach(None) == 0:
        log(f"cannot listen on {args.host}:{args.port}")
        sys.exit(2)
    for feed in feeds:
        feed.start()

    def set_hung(value):
        for feed in feeds:
            feed.hung = value
        log("hung: sending nothing, connections stay open" if value else "resumed sending")
        return GLib.SOURCE_REMOVE

    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGUSR1, lambda: set_hung(True) or True)
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGUSR2, lambda: set_hung(False) or True)
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, lambda: loop.quit() or False)
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, lambda: loop.quit() or False)
    if args.hang_after is not None:
        GLib.timeout_add(int(args.hang_after * 1000), lambda: set_hung(True))

    urls = " ".join(f"rtsp://{args.host}:{args.port}{f.mount}" for f in feeds)
    print(f"ready {urls}", flush=True)
    try:
        loop.run()
    finally:
        for feed in feeds:
            feed.pipeline.set_state(Gst.State.NULL)


if __name__ == "__main__":
    main()
