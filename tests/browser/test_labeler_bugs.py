"""Labeler bugs a new user hit (issue 13), each in Chromium; every test here failed before its fix."""

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotations.geometry import decode_mask, encode_mask
from annotations.models import Annotation, Classification
from projects.models import Label, Role
from projects.uploads import images_upload
from tests.browser.test_labeler import login, open_labeler, saved, screen, shapes, stroke
from tests.factories import UserFactory, image_bytes, make_project

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def setup(live_server):
    user = UserFactory(username="labeler")
    project = make_project(owner=user, name="Birds")
    gull = Label.objects.create(project=project, name="gull", color="#ff0000", hotkey=1)
    tern = Label.objects.create(project=project, name="tern", color="#00ff00", hotkey=2)
    files = [
        SimpleUploadedFile(n, image_bytes(400, 300, color=c))
        for n, c in [("a.png", (90, 90, 90)), ("b.png", (20, 20, 20))]
    ]
    first, second = images_upload(project=project, user=user, labels=[], files=files).stored
    url = f"{live_server.url}/projects/{project.id}/images/{{}}/label/"
    return {
        "user": user,
        "project": project,
        "image": first,
        "second": second,
        "gull": gull,
        "tern": tern,
        "url": url.format(first.id),
        "second_url": url.format(second.id),
    }


def drag(page, start, end):
    page.mouse.move(*screen(page, *start))
    page.mouse.down()
    page.mouse.move(*screen(page, *end), steps=4)
    page.mouse.up()


def test_a_hotkey_labels_the_next_box_not_the_one_just_drawn(setup, page, live_server):
    login(page, live_server)
    open_labeler(page, setup["url"])
    assert page.inner_text("#current-label") == "gull"
    page.keyboard.press("b")
    drag(page, (20, 20), (80, 80))
    page.keyboard.press("2")  # "press 2, draw the next box"
    assert page.inner_text("#current-label") == "tern"
    drag(page, (200, 20), (260, 80))
    saved(page)
    assert [s["label__name"] for s in shapes(setup["image"])] == ["gull", "tern"]
    assert page.evaluate("window.sightline.tools.tool") == "box"  # still ready for the next object
    # A box the person selects does take the hotkey; Esc deselects, and then the hotkey does not.
    page.keyboard.press("v")
    page.mouse.click(*screen(page, 50, 50))
    page.keyboard.press("2")
    saved(page)
    assert [s["label__name"] for s in shapes(setup["image"])] == ["tern", "tern"]
    page.keyboard.press("Escape")
    assert page.evaluate("window.sightline.tools.selected") is None
    page.keyboard.press("1")
    page.wait_for_timeout(700)  # longer than the save debounce: nothing may be sent
    assert [s["label__name"] for s in shapes(setup["image"])] == ["tern", "tern"]
    assert page.inner_text("#current-label") == "gull"


def test_undo_in_the_bitmap_tool_takes_the_stroke_off_the_brush_and_out_of_the_next_save(setup, page, live_server):
    login(page, live_server)
    open_labeler(page, setup["url"])
    page.keyboard.press("i")
    stroke(page, [(50, 50), (150, 50)])
    saved(page)
    stroke(page, [(50, 100), (150, 100)])
    saved(page)
    page.keyboard.press("Control+z")
    saved(page)
    shown = page.evaluate("""() => {
        const canvas = window.sightline.tools.bitmap.canvas, ctx = canvas.getContext('2d');
        return [ctx.getImageData(100, 100, 1, 1).data[3], ctx.getImageData(100, 50, 1, 1).data[3]];
    }""")
    assert shown == [0, 255]  # the undone stroke is not on the brush canvas; the first one is
    stroke(page, [(50, 150), (150, 150)])
    saved(page)
    [mask] = shapes(setup["image"])
    pixels = decode_mask(mask["geometry"]["rle"])
    assert (bool(pixels[50, 100]), bool(pixels[100, 100]), bool(pixels[150, 100])) == (True, False, True)
    page.keyboard.press("Control+z")
    page.keyboard.press("Control+z")
    saved(page)
    assert shapes(setup["image"]) == []
    page.keyboard.press("Control+Shift+z")
    saved(page)
    pixels = decode_mask(shapes(setup["image"])[0]["geometry"]["rle"])
    assert (bool(pixels[50, 100]), bool(pixels[100, 100]), bool(pixels[150, 100])) == (True, False, False)


def test_a_mask_is_hit_by_its_pixels_and_the_smallest_object_under_the_pointer_wins(setup, page, live_server):
    pixels = np.zeros((300, 400), dtype=bool)
    pixels[0:200, 0:300] = True  # a big mask over the top left
    Annotation.objects.create(
        image=setup["image"], label=setup["gull"], kind="mask", geometry={"rle": encode_mask(pixels)}
    )
    Annotation.objects.create(
        image=setup["image"], label=setup["tern"], kind="box", geometry={"x": 100, "y": 50, "width": 60, "height": 40}
    )
    login(page, live_server)
    open_labeler(page, setup["url"])
    kind = "() => window.sightline.store.find(window.sightline.tools.selected)?.kind ?? null"
    page.mouse.click(*screen(page, 120, 70))  # inside both: the box is smaller
    assert page.evaluate(kind) == "box"
    page.mouse.click(*screen(page, 250, 150))  # only the mask's pixels
    assert page.evaluate(kind) == "mask"
    page.mouse.click(*screen(page, 350, 250))  # inside the mask's image-sized box, outside its pixels
    assert page.evaluate(kind) is None


def test_a_viewer_sees_the_image_and_its_objects_with_no_tools(setup, page, live_server):
    Annotation.objects.create(
        image=setup["image"], label=setup["gull"], kind="box", geometry={"x": 10, "y": 10, "width": 50, "height": 50}
    )
    viewer = UserFactory(username="viewer")
    from projects.services import membership_grant

    membership_grant(project=setup["project"], email=viewer.email, role=Role.objects.get(name=Role.VIEWER))
    login(page, live_server, "viewer")
    requests = []
    page.on("request", lambda r: requests.append(r.method) if "/annotations/" in r.url else None)
    open_labeler(page, setup["url"])
    assert page.locator("[data-tool]").count() == 0
    assert page.locator("[data-action=undo]").count() == 0 and page.locator("#label-create").count() == 0
    assert page.locator("#classification-list button").count() == 0
    assert page.inner_text("#save-state") == "Read only: your role may look, not label"
    assert page.evaluate("window.sightline.renderer.drawn") == 1  # the objects are shown
    for key in ["b", "p", "Delete"]:
        page.keyboard.press(key)
    page.mouse.click(*screen(page, 200, 200))
    page.wait_for_timeout(700)
    assert requests == [] and Annotation.objects.count() == 1  # the document came with the page; nothing is sent
    page.keyboard.press("?")
    assert "Next image" in page.inner_text("#shortcut-list") and "Box" not in page.inner_text("#shortcut-list")


def test_a_refused_save_is_explained_in_words_and_not_sent_again(setup, page, live_server):
    login(page, live_server)
    open_labeler(page, setup["url"])
    labeler = UserFactory(username="demoted")
    from projects.services import membership_grant

    membership = membership_grant(
        project=setup["project"], email=labeler.email, role=Role.objects.get(name=Role.LABELER)
    )
    page.context.clear_cookies()
    login(page, live_server, "demoted")
    open_labeler(page, setup["url"])
    from projects.services import membership_change_role

    membership_change_role(membership=membership, role=Role.objects.get(name=Role.VIEWER))  # demoted while labeling
    puts = []
    page.on("request", lambda r: puts.append(r.url) if r.method == "PUT" else None)
    page.keyboard.press("p")
    page.mouse.click(*screen(page, 30, 30))
    page.wait_for_function("() => document.getElementById('save-state').dataset.state === 'error'")
    assert page.inner_text("#save-state") == "Not saved: Your role in this project does not allow this: label images."
    assert page.evaluate(f"localStorage.getItem('sightline:pending:{setup['image'].id}')") is None
    page.wait_for_timeout(3500)  # longer than the offline retry
    assert len(puts) == 1 and Annotation.objects.count() == 0


def test_the_toolbar_fits_one_row_and_the_image_is_whole_at_1280_and_1366(setup, browser, live_server):
    for width, height in [(1280, 720), (1366, 768)]:
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        page.set_default_timeout(15_000)
        login(page, live_server)
        open_labeler(page, setup["url"])
        page.keyboard.press("w")  # the smart tool's options join in a row of their own
        toolbar = page.locator("#toolbar").bounding_box()
        buttons = page.eval_on_selector_all(
            "#toolbar > *:not([hidden])", "els => els.map(e => e.getBoundingClientRect().top)"
        )
        assert max(buttons) - min(buttons) < 10, (width, buttons)  # one row
        assert toolbar["height"] < 48
        canvas = page.locator("#canvas").bounding_box()
        view = page.evaluate("window.sightline.renderer.view")
        image_bottom = canvas["y"] + view["y"] + 300 * view["scale"]
        image_right = canvas["x"] + view["x"] + 400 * view["scale"]
        assert canvas["y"] + view["y"] >= canvas["y"] and image_bottom <= canvas["y"] + canvas["height"] + 1
        assert image_right <= canvas["x"] + canvas["width"] + 1 and canvas["y"] + canvas["height"] <= height + 1
        context.close()


def test_shortcut_overlay_classification_hotkeys_last_image_and_the_remembered_label(setup, page, live_server):
    login(page, live_server)
    open_labeler(page, setup["second_url"])  # the grid's first image: the newest
    page.keyboard.press("?")
    page.wait_for_selector("#shortcuts[open]")
    overlay = page.inner_text("#shortcut-list")
    assert "Box" in overlay and "Undo" in overlay and "gull: the next object's label" in overlay
    page.keyboard.press("Escape")
    page.keyboard.press("Shift+Digit2")  # Shift+2: the image is a tern
    saved(page)
    assert list(Classification.objects.filter(image=setup["second"]).values_list("label__name", "is_default")) == [
        ("tern", True)
    ]
    page.keyboard.press("2")
    page.keyboard.press("d")  # to the next image, which starts with the label last used
    page.wait_for_url(f"**/images/{setup['image'].id}/label/")
    page.wait_for_selector("body[data-labeler-ready=true]")
    assert page.inner_text("#current-label") == "tern"
    page.keyboard.press("d")
    page.wait_for_function("() => document.getElementById('save-state').textContent === 'This is the last image.'")


def test_object_attributes_are_edited_in_the_object_panel(setup, page, live_server):
    setup["gull"].attributes = [
        {"name": "truncated", "type": "checkbox"},
        {"name": "count", "type": "number"},
        {"name": "pose", "type": "choice", "choices": ["flying", "sitting"]},
    ]
    setup["gull"].save()
    Annotation.objects.create(
        image=setup["image"], label=setup["gull"], kind="box", geometry={"x": 10, "y": 10, "width": 80, "height": 60}
    )
    login(page, live_server)
    open_labeler(page, setup["url"])
    assert page.locator("#object-attributes").is_hidden()
    page.mouse.click(*screen(page, 50, 40))
    page.wait_for_selector("#object-attributes:not([hidden])")
    page.check("#attribute-fields [data-attribute=truncated] input")
    # Each change rebuilds the fields in the next frame: wait until they show it before typing in the next one,
    # as a person's eye would (a field rebuilt under the typing would lose what was typed).
    page.wait_for_function("() => window.sightline.panels.attributesShown.includes('\"truncated\":true')")
    page.fill("#attribute-fields [data-attribute=count] input", "3")
    page.press("#attribute-fields [data-attribute=count] input", "Enter")
    page.wait_for_function("() => window.sightline.panels.attributesShown.includes('\"count\":3')")
    page.select_option("#attribute-fields [data-attribute=pose] select", "sitting")
    saved(page)
    page.wait_for_function("() => window.sightline.store.shapes[0].attributes.pose === 'sitting'")
    saved(page)
    assert Annotation.objects.get().attributes == {"truncated": True, "count": 3, "pose": "sitting"}
    page.keyboard.press("Control+z")  # undo takes the last value back, like any change
    saved(page)
    assert Annotation.objects.get().attributes == {"truncated": True, "count": 3}


def test_a_server_error_keeps_the_work_and_sends_it_again(setup, page, live_server):
    login(page, live_server)
    open_labeler(page, setup["url"])
    failures = []

    def once_503(route):
        if route.request.method == "PUT" and not failures:
            failures.append(route.request.url)
            return route.fulfill(status=503, body='{"detail": "restarting"}', content_type="application/json")
        return route.continue_()

    page.route("**/annotations/", once_503)
    page.keyboard.press("p")
    page.mouse.click(*screen(page, 40, 40))
    page.wait_for_function("() => document.getElementById('save-state').dataset.state === 'offline'")
    kept = page.evaluate(f"localStorage.getItem('sightline:pending:{setup['image'].id}')")
    assert kept is not None  # a 503 is no refusal: the work stays in this browser
    saved(page)  # and goes again by itself
    assert [s["kind"] for s in shapes(setup["image"])] == ["points"] and len(failures) == 1


def test_a_label_made_in_the_labeler_gets_a_hotkey_that_works_at_once(setup, page, live_server):
    login(page, live_server)
    open_labeler(page, setup["url"])
    page.fill("#label-name", "heron")
    page.click("#label-create button")
    page.wait_for_selector("#label-list li:has-text('heron') .key:text-is('3')")
    page.keyboard.press("1")
    assert page.inner_text("#current-label") == "gull"
    page.keyboard.press("3")
    assert page.inner_text("#current-label") == "heron"
    page.keyboard.press("?")
    assert "heron: the next object's label" in page.inner_text("#shortcut-list")


def test_deleting_the_mask_under_the_brush_starts_a_new_one(setup, page, live_server):
    login(page, live_server)
    open_labeler(page, setup["url"])
    page.keyboard.press("i")
    stroke(page, [(50, 50), (150, 50)])
    saved(page)
    page.click("#object-list li button:has-text('×')")
    saved(page)
    assert shapes(setup["image"]) == []
    assert page.evaluate("window.sightline.tools.bitmap.canvas") is None  # the deleted mask is not drawn any more
    stroke(page, [(50, 200), (150, 200)])
    saved(page)
    [mask] = shapes(setup["image"])
    pixels = decode_mask(mask["geometry"]["rle"])
    assert (bool(pixels[50, 100]), bool(pixels[200, 100])) == (False, True)
