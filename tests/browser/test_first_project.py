"""A newcomer's first minutes: sign up, create a project, upload three images, see them in the grid."""

import io

import pytest
from PIL import Image as PILImage

from projects.models import Image, Project

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_sign_up_create_a_project_upload_three_images_and_see_them(live_server, page, tmp_path):
    paths = []
    for name, color in [("red.png", (220, 20, 20)), ("green.png", (20, 220, 20)), ("blue.jpg", (20, 20, 220))]:
        out = io.BytesIO()
        PILImage.new("RGB", (320, 240), color).save(out, "JPEG" if name.endswith("jpg") else "PNG")
        (tmp_path / name).write_bytes(out.getvalue())
        paths.append(str(tmp_path / name))

    page.goto(f"{live_server.url}/accounts/signup/")
    page.fill("input[name=username]", "newcomer")
    page.fill("input[name=email]", "newcomer@example.com")
    page.fill("input[name=password1]", "an-old-tree-42")
    page.fill("input[name=password2]", "an-old-tree-42")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/projects/")

    page.fill("#project-create input[name=name]", "Colours")
    page.click("#project-create button[type=submit]")
    project = Project.objects.get(name="Colours")
    page.wait_for_url(f"{live_server.url}/projects/{project.id}/")

    page.set_input_files("#upload-form input[type=file]", paths)
    page.fill("#upload-form input[name=labels]", "swatch")
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("text=Done: 3 stored, 0 refused.")
    page.wait_for_function("() => document.querySelectorAll('#grid .tile img').length === 3")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#grid .tile img')].every(img => img.complete && img.naturalWidth > 0)"
    )

    assert page.inner_text("#grid .grid-head span") == "3 images"
    names = page.eval_on_selector_all("#grid .tile img", "imgs => imgs.map(i => i.alt)")
    assert sorted(names) == ["blue.jpg", "green.png", "red.png"]
    widths = page.eval_on_selector_all("#grid .tile img", "imgs => imgs.map(i => i.naturalWidth)")
    assert widths == [256, 256, 256]  # thumbnails, not the originals
    assert sorted(Image.objects.filter(project=project).values_list("name", flat=True)) == names
    assert {i.classifications.get().label.name for i in Image.objects.all()} == {"swatch"}
