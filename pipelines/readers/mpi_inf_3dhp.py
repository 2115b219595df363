"""MPI-INF-3DHP in SPIN's ``.npz`` form (24 joints) or mmpose's (17 joints, MPI order).

Layout under the root::

    <annotations>             e.g. mpi_inf_3dhp_train.npz (prepare.<name>.annotations)
    images/<imgname>          SPIN: S1/Seq1/imageFrames/video_0/frame_000001.jpg,
                              mmpose: S4_Seq2_Cam0_001033.jpg, TS1_002001.jpg
    <intrinsics>              optional cameras JSON keyed "S<s>_Seq<q>_Cam<c>" or "TS<n>"

One person per frame, 3D joints in metres in the camera frame (see
:mod:`pipelines.readers.spin_npz`). The image size is read from each image: mmpose's
converted training cameras state a height of 204 px for 2048 px frames.
"""

from __future__ import annotations

import re

from pipelines.readers.spin_npz import SpinNpzReader, parse_name

__all__ = ["MpiInf3dhpReader"]


class MpiInf3dhpReader(SpinNpzReader):
    kind = "mpi_inf_3dhp"
    layouts = {24: "spin24", 17: "mpi17"}

    def camera(self, imgname: str) -> dict[str, str]:
        train = re.search(r"(?:^|/)(S\d+)[/_](Seq\d+)[/_].*?(?:Cam|video_)(\d+)", imgname)
        if train:
            subject, sequence, camera = train.groups()
            return {"camera": f"{subject}_{sequence}_Cam{camera}", "camera_id": camera,
                    "subject": subject, "sequence": sequence}
        test = parse_name(r"(?:^|/)(TS\d+)[/_]", imgname,
                          "expected S<s>_Seq<q>_Cam<c>..., S<s>/Seq<q>/.../video_<c>/... or "
                          "TS<n>_... / .../TS<n>/...")
        return {"camera": test.group(1), "sequence": test.group(1)}
