#!/usr/bin/env python3
"""Stand-in `ffmpeg` / `ffprobe` for a lent GPU machine that has no ffmpeg but has OpenCV (opencv-python-headless,
which decodes with its own bundled libavcodec). A static ffmpeg does not fit the 64 MiB carry beside Node and
onnxruntime. Answers exactly what cafe-stream's file source asks through fluent-ffmpeg (see
src/ingest/probe.ts, src/ingest/file-source.ts):

  ffprobe -show_streams -show_format FILE        -> [STREAM]/[FORMAT] key=value blocks
  ffmpeg -formats | -encoders                    -> the rawvideo lines fluent-ffmpeg checks for
  ffmpeg ... -i FILE [-filter:v fps=N] ... -pix_fmt rgb24 -f rawvideo pipe:1   -> RGB frames on stdout

Chosen by name: link or copy it as `ffmpeg` and `ffprobe` (FFMPEG_PATH / FFPROBE_PATH). Only for measuring on
that machine; users run the real ffmpeg.
"""
import os
import sys


def probe(path: str) -> int:
    import cv2

    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        print(f"{path}: Invalid data found when processing input", file=sys.stderr)
        return 1
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    duration = n / fps if fps > 0 and n > 0 else 0.0
    rate = f"{round(fps * 1000)}/1000" if fps > 0 else "0/0"
    print("[STREAM]\nindex=0\ncodec_type=video\ncodec_name=h264\n"
          f"width={w}\nheight={h}\nr_frame_rate={rate}\navg_frame_rate={rate}\nduration={duration}\n"
          f"nb_frames={n}\n[/STREAM]\n[FORMAT]\nformat_name=mov,mp4,m4a,3gp,3g2,mj2\nduration={duration}\n[/FORMAT]")
    return 0


def decode(args: list[str]) -> int:
    import cv2

    path = args[args.index("-i") + 1]
    fps_out = None
    for flag in ("-filter:v", "-vf"):
        if flag in args:
            for part in args[args.index(flag) + 1].split(","):
                if part.startswith("fps="):
                    fps_out = float(part[4:])
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        print(f"{path}: Invalid data found when processing input", file=sys.stderr)
        return 1
    fps_in = cap.get(cv2.CAP_PROP_FPS) or 25.0
    out = sys.stdout.buffer
    i, next_t = 0, 0.0
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            t = i / fps_in
            i += 1
            if fps_out is not None:
                # ffmpeg's fps filter keeps the frame nearest each output tick; the first frame at/after it is close
                if t + 0.5 / fps_in < next_t:
                    continue
                next_t += 1.0 / fps_out
            out.write(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).tobytes())
        out.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def main(argv: list[str]) -> int:
    name = os.path.basename(argv[0])
    args = argv[1:]
    if name.startswith("ffprobe"):
        return probe(args[-1])
    if args[:1] == ["-formats"]:
        print("File formats:\n D. = Demuxing supported\n .E = Muxing supported\n --\n DE rawvideo        raw video")
        return 0
    if args[:1] == ["-encoders"]:
        print("Encoders:\n V..... = Video\n ------\n V..... rawvideo             raw video")
        return 0
    if "-i" in args:
        return decode(args)
    print(f"cv2-ffmpeg: unsupported arguments: {' '.join(args)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
