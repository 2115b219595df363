"""Human3.6M in SPIN's ``.npz`` form (the converted layout everyone uses; the official
release is videos plus MATLAB tools).

Layout under the root::

    <annotations>             e.g. h36m_valid_protocol2.npz (prepare.<name>.annotations)
    images/<imgname>          e.g. images/S9_Directions_1.54138969_000001.jpg
    <intrinsics>              optional cameras JSON keyed "<subject>_<camera id>"

One person per frame; 3D joints in metres in the camera frame (see
:mod:`pipelines.readers.spin_npz`). With ``body_model.kind: smpl`` the file's SMPL
parameters (MoSh fits) become body targets; with Anny they are not used.
"""

from __future__ import annotations

from pipelines.readers.spin_npz import SpinNpzReader, parse_name

__all__ = ["H36MReader"]


class H36MReader(SpinNpzReader):
    kind = "h36m"
    layouts = {24: "spin24"}

    def camera(self, imgname: str) -> dict[str, str]:
        match = parse_name(r"(S\d+)_([^/]+)\.(\d+)_(\d+)\.\w+$", imgname,
                           "expected S<subject>_<action>.<camera id>_<frame>.jpg")
        subject, action, camera, frame = match.groups()
        return {"camera": f"{subject}_{camera}", "camera_id": camera, "subject": subject,
                "action": action, "frame": int(frame)}
