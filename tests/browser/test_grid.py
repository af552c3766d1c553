"""The image grid in Chromium: drop and folder uploads, select all, and the index line that follows uploads."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from projects.models import Image, Label
from projects.uploads import images_upload
from tests.browser.test_labeler import login
from tests.factories import UserFactory, image_bytes, make_project

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def project(live_server):
    user = UserFactory(username="labeler")
    return make_project(owner=user, name="Birds")


def png(color) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (64, 48), color).save(out, "PNG")
    return out.getvalue()


def test_dropped_files_and_a_chosen_folder_are_uploaded_and_the_index_line_follows(
    project, page, live_server, tmp_path
):
    login(page, live_server)
    page.goto(f"{live_server.url}/projects/{project.id}/")
    page.wait_for_selector("#similarity-index:has-text('all 0 images')")
    assert page.locator("#upload[open]").count() == 1  # an empty project shows the upload card open
    # A drop of two files, as a browser makes it.
    page.evaluate(
        """([a, b]) => {
        const transfer = new DataTransfer();
        for (const [name, bytes] of [["dropped-a.png", a], ["dropped-b.png", b]]) {
            transfer.items.add(new File([new Uint8Array(bytes)], name, {type: "image/png"}));
        }
        document.getElementById("drop-zone").dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
    }""",
        [list(png((200, 0, 0))), list(png((0, 200, 0)))],
    )
    page.wait_for_selector("#drop-chosen:has-text('2 files chosen.')")
    folder = tmp_path / "survey"
    (folder / "day1").mkdir(parents=True)
    (folder / "day1" / "folder-c.png").write_bytes(png((0, 0, 200)))
    page.set_input_files("#upload-form input[name=folder]", str(folder))
    page.wait_for_selector("#drop-chosen:has-text('3 files chosen.')")
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("text=Done: 3 stored, 0 refused.")
    assert sorted(Image.objects.filter(project=project).values_list("name", flat=True)) == [
        "dropped-a.png",
        "dropped-b.png",
        "folder-c.png",
    ]
    page.wait_for_selector("#similarity-index:has-text('all 3 images')", timeout=60_000)  # no reload


def test_select_the_page_then_every_image_the_filter_matches_and_assign_a_label(project, page, live_server):
    owner = project.owner
    files = [SimpleUploadedFile(f"{i:02}.png", image_bytes(color=(i, 100, 100))) for i in range(63)]
    images_upload(project=project, user=owner, files=files, labels=[])
    gull = Label.objects.create(project=project, name="gull")
    login(page, live_server)
    page.goto(f"{live_server.url}/projects/{project.id}/")
    assert page.locator("#upload[open]").count() == 0  # folded away once the project has images
    page.wait_for_load_state("load")  # the thumbnails in place: nothing moves under the click
    page.check("#select-page")
    page.wait_for_selector("#selection:has-text('60 on this page selected.')")
    page.click("#select-all-matching")
    page.wait_for_selector("#selection:has-text('All 63 images that match are selected.')")
    page.click("#label-menu summary")
    grid_loads = []
    page.on("request", lambda r: grid_loads.append(r.url) if f"/projects/{project.id}/?" in r.url else None)
    page.select_option("#label-menu select[name=label]", str(gull.id))
    page.wait_for_timeout(500)
    # Choosing the label is not a filter: the grid stays, with the menu open and the selection kept.
    assert (grid_loads, page.locator("#label-menu[open]").count()) == ([], 1)
    page.click("#label-assign")
    page.wait_for_selector("text=Labeled 63 images gull.")
    assert gull.classifications.count() == 63
    # A select of the filter row does reload the grid, and keeps its state in the URL.
    page.select_option(".filter-row select[name=type]", "single")
    page.wait_for_url("**type=single**")
    assert grid_loads and "type=single" in grid_loads[-1]


def test_a_slow_action_disables_its_button_and_counts_the_seconds(project, page, live_server, tmp_path):
    """busy.js, on the similar-images upload: every wait over a second shows that it is running."""
    (tmp_path / "query.png").write_bytes(png((10, 200, 10)))
    login(page, live_server)
    page.goto(f"{live_server.url}/projects/{project.id}/similar/")
    # The search is held unanswered, as a slow server would; it answers into a frame, so the page stays to be read.
    held = []
    page.route(
        "**/similar/**", lambda route: held.append(route) if route.request.method == "POST" else route.continue_()
    )
    page.evaluate("""() => { const sink = document.createElement('iframe'); sink.name = 'sink'; document.body.append(sink);
        document.getElementById('similar-upload').target = 'sink'; }""")
    page.set_input_files("#similar-upload input[type=file]", str(tmp_path / "query.png"))
    page.click("#similar-upload button[type=submit]", no_wait_after=True)
    page.wait_for_function(
        "() => /^Searching… [1-3] s$/.test(document.querySelector('#similar-upload button').textContent)"
    )
    assert page.eval_on_selector("#similar-upload button", "b => b.disabled") is True
    assert len(held) == 1
    held[0].abort()
