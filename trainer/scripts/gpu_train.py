"""`trainer train` on a GPU, unchanged CLI: python scripts/gpu_train.py [--device cuda|cpu] <trainer train args>

The trainer (cafe_train) is written for the CPU and is left as it is. This runner moves its work to a device from
outside, around four seams of cafe_train.train, then calls the ordinary `trainer train` entry point:
  - build_model: the CafeHead goes to the device after it is built (feature statistics, warm starts: on the CPU);
  - CafeHead.forward: its inputs (the augmented image batch, the cached features) are moved to the device;
  - Data: labels/targets live on the device (the loop indexes them with CPU indices and compares to logits);
  - cafe_loss: the channel-drop mask it is given (built on the CPU) is moved to the device.
Augmentation stays on the CPU with its seeded generator, so a step draws the same numbers as on the CPU.
Checkpoints hold device tensors; the trainer loads them with map_location="cpu" (export-head, --resume).
`--device cpu` runs the same patched path on the CPU (the smoke run of trainer/scripts/gpu-train.sh).
"""

from __future__ import annotations

import sys

import torch


def patch(device: torch.device) -> None:
    import cafe_models.cafe as cafe
    import cafe_train.train as tr

    forward = cafe.CafeHead.forward

    def forward_on_device(self, image, features):
        return forward(self, image.to(device, non_blocking=True), features.to(device, non_blocking=True))

    cafe.CafeHead.forward = forward_on_device

    build_model = tr.build_model
    tr.build_model = lambda *a, **k: build_model(*a, **k).to(device)

    data_init = tr.Data.__init__

    def data_on_device(self, *a, **k):
        data_init(self, *a, **k)
        self.labels = self.labels.to(device)
        self.targets = self.targets.to(device)

    tr.Data.__init__ = data_on_device

    cafe_loss = tr.cafe_loss
    tr.cafe_loss = lambda logits, f, target, drop, *a, **k: cafe_loss(logits, f, target, drop.to(device), *a, **k)


def main(argv: list[str]) -> int:
    device = "cuda"
    if argv[:1] == ["--device"]:
        device, argv = argv[1], argv[2:]
    if device == "cuda":
        if not torch.cuda.is_available():
            print("gpu_train: torch sees no CUDA device (use --device cpu for a smoke run)", file=sys.stderr)
            return 2
        torch.backends.cudnn.benchmark = True  # fixed 224x224 batches: let cuDNN pick its fastest kernels
        print(f"gpu_train: {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
    patch(torch.device(device))
    from cafe_train.main import main as trainer_main

    return trainer_main(["train", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
