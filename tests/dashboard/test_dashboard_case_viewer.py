"""The site-local case viewer (AppTest): roles, slices, overlay, draft editing and acceptance."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.auth import Login
from dashboard.views.case_viewer import slice_image

SITE_APP = Path(__file__).resolve().parents[2] / "dashboard" / "site_app.py"
TIMEOUT_S = 30.0


def _open(monkeypatch: pytest.MonkeyPatch, site_dir: Path, user: str | None = "ana") -> AppTest:
    monkeypatch.setenv("FEDMPT_SITE_DIR", str(site_dir))
    monkeypatch.delenv("FEDMPT_WORKDIR", raising=False)
    at = AppTest.from_file(str(SITE_APP), default_timeout=TIMEOUT_S)
    if user is not None:
        at.session_state["fedmpt_login"] = Login(name=user, at=time.time())
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _text(at: AppTest) -> str:
    return "\n".join(str(getattr(e, "value", "")) for e in at.main)


def test_not_logged_in(monkeypatch: pytest.MonkeyPatch, site_dir: Path) -> None:
    at = _open(monkeypatch, site_dir, user=None)
    assert at.title[0].value == "FedMPT case viewer: hospital-a"
    assert len(at.text_input) == 2 and not at.get("image") and not at.text_area


@pytest.mark.parametrize(("user", "why"), [("rita", "Reviewers see the consortium pages only"),
                                           ("bo", "belongs to site `hospital-b`")])
def test_reviewer_and_other_sites_cannot_open_it(
    monkeypatch: pytest.MonkeyPatch, site_dir: Path, user: str, why: str
) -> None:
    at = _open(monkeypatch, site_dir, user)
    assert why in at.error[0].value
    assert not at.get("image") and not at.selectbox and not at.text_area


def test_case_viewer_with_overlay_and_draft(
    monkeypatch: pytest.MonkeyPatch, site_dir: Path, site_studies: tuple[str, ...]
) -> None:
    # Execute
    at = _open(monkeypatch, site_dir, "ana")

    # Assert: the study picker lists pseudonymous keys only
    assert at.selectbox(key="study").options[0].startswith(site_studies[0])
    assert at.slider(key=f"slice_{site_studies[0]}").value == 7  # the middle of 12 slices
    assert at.toggle(key="overlay").value is True
    assert len(at.get("image")) == 1
    assert "Small nodule, right upper lobe." in _text(at)
    assert at.text_area(key=f"findings_{site_studies[0]}").value.startswith("A 9 mm solid nodule")
    warnings = [w.value for w in at.warning]
    assert "Check renal function before dosing." in warnings
    # the draft's clarithromycin against the patient's simvastatin, from the site's own table, once
    assert [w for w in warnings if "simvastatin" in w] == [
        "clarithromycin + simvastatin (major; recommended with current medication): "
        "CYP3A4 inhibition raises statin levels (myopathy)"]

    # Execute: scroll, change window, edit and accept
    at.slider(key=f"slice_{site_studies[0]}").set_value(3).run()
    at.radio(key="window").set_value("bone").run()
    at.text_area(key=f"impression_{site_studies[0]}").input("Nodule, 9 mm. CT in 3 months.").run()
    at.button(key=f"accept_{site_studies[0]}").click().run()

    # Assert
    assert not at.exception
    assert "slice 3 / 12, bone window" in at.get("image")[0].proto.imgs[0].caption
    saved = site_dir / "cache" / "accepted_reports" / f"{site_studies[0]}.json"
    versions = json.loads(saved.read_text(encoding="utf-8"))["versions"]
    assert len(versions) == 1
    assert versions[0]["impression"] == "Nodule, 9 mm. CT in 3 months."
    assert versions[0]["accepted_by"] == "ana"
    assert versions[0]["accepted_at"].endswith("Z")
    assert versions[0]["medications"] == ["clarithromycin", "amoxicillin"]
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert "Accepted by **ana**" in at.success[0].value
    assert not [p for p in saved.parent.iterdir() if p.name.endswith(".tmp")]


def test_study_without_map_or_draft(
    monkeypatch: pytest.MonkeyPatch, site_dir: Path, site_studies: tuple[str, ...]
) -> None:
    at = _open(monkeypatch, site_dir, "lee")  # a lead may open a site's viewer the site added them to
    at.selectbox(key="study").set_value(site_studies[1]).run()
    infos = " ".join(i.value for i in at.info)
    assert f"cache/explanations/{site_studies[1]}.npy" in infos
    assert f"cache/drafts/{site_studies[1]}.json" in infos
    assert not at.toggle and not at.text_area
    assert len(at.get("image")) == 1


def test_site_not_ingested_yet(monkeypatch: pytest.MonkeyPatch, site_dir: Path) -> None:
    (site_dir / "cache" / "index.json").unlink()
    at = _open(monkeypatch, site_dir)
    assert "No ingested studies" in at.info[0].value
    assert at.code[0].value == f"fedmpt ingest {site_dir}"


def test_broken_volume_is_a_message(
    monkeypatch: pytest.MonkeyPatch, site_dir: Path, site_studies: tuple[str, ...]
) -> None:
    np.save(site_dir / "cache" / "volumes" / f"{site_studies[0]}.npy", np.zeros((4, 4), dtype=np.float16))
    at = _open(monkeypatch, site_dir)
    assert "expected (3, D, H, W)" in at.error[0].value
    assert "Traceback" not in _text(at)


def test_no_site_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEDMPT_SITE_DIR", raising=False)
    at = AppTest.from_file(str(SITE_APP), default_timeout=TIMEOUT_S).run()
    assert not at.exception and "fedmpt dashboard --site SITE_DIR" in at.info[0].value


def test_slice_image_upscales_and_blends() -> None:
    # Prepare: a mid-gray (1, 2, 2) volume per window; the map is hot on one voxel
    volume = np.full((3, 1, 2, 2), 0.5, dtype=np.float16)
    heat = np.zeros((1, 2, 2), dtype=np.float32)
    heat[0, 0, 0] = 1.0

    # Execute
    plain = slice_image(volume, 1, 0)
    blended = slice_image(volume, 1, 0, heat, opacity=1.0)

    # Assert
    assert plain.shape == (512, 512, 3) and plain.dtype == np.uint8
    assert (plain == 128).all()
    assert tuple(blended[0, 0]) == (255, 0, 0)  # fully red where the map is 1
    assert tuple(blended[-1, -1]) == (128, 128, 128)  # untouched where it is 0


def test_overlay_outlines_only_the_focus_region() -> None:
    # Prepare: a 16 x 16 slice whose map is non-zero on a 4 x 4 blob
    volume = np.full((3, 1, 16, 16), 0.5, dtype=np.float16)
    heat = np.zeros((1, 16, 16), dtype=np.float32)
    heat[0, 6:10, 6:10] = 0.3
    # Execute
    image = slice_image(volume, 0, 0, heat, opacity=0.5)
    # Assert: red contour on the blob's edge, tinted blob inside, the rest of the slice untouched
    k = 512 // 16
    assert tuple(image[6 * k, 7 * k]) == (255, 0, 0)
    inside = image[8 * k, 8 * k]
    assert inside[0] > 128 and tuple(inside) != (255, 0, 0)
    untouched = np.ones((16, 16), dtype=bool)
    untouched[6:10, 6:10] = False
    assert (image[untouched.repeat(k, 0).repeat(k, 1)] == 128).all()


def test_removing_the_drug_removes_its_interaction_warning(
    monkeypatch: pytest.MonkeyPatch, site_dir: Path, site_studies: tuple[str, ...]
) -> None:
    # Prepare
    at = _open(monkeypatch, site_dir, "ana")
    # Execute: the clinician drops clarithromycin from the drafted list
    at.text_area(key=f"medications_{site_studies[0]}").input("amoxicillin").run()
    # Assert: the draft's stored warning for it goes, the dosing note stays
    warnings = [w.value for w in at.warning]
    assert not [w for w in warnings if "simvastatin" in w]
    assert "Check renal function before dosing." in warnings
