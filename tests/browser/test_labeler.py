"""The labeler in Chromium: each tool draws, and the API stores exactly what was drawn."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotations.models import Annotation
from projects.models import Label
from projects.uploads import images_upload
from tests.factories import UserFactory, image_bytes, make_project

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def setup(live_server):
    user = UserFactory(username="labeler")
    project = make_project(owner=user, name="Birds")
    gull = Label.objects.create(project=project, name="gull", color="#ff0000", hotkey=1)
    tern = Label.objects.create(project=project, name="tern", color="#00ff00", hotkey=2)
    image = images_upload(
        project=project, user=user, labels=[], files=[SimpleUploadedFile("a.png", image_bytes(400, 300))]
    ).stored[0]
    return {
        "user": user,
        "project": project,
        "image": image,
        "gull": gull,
        "tern": tern,
        "url": f"{live_server.url}/projects/{project.id}/images/{image.id}/label/",
    }


def login(page, live_server, username="labeler"):
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/projects/")


def open_labeler(page, url):
    page.goto(url)
    page.wait_for_selector("body[data-labeler-ready=true]")


def screen(page, x, y):
    """Page coordinates of an image point, measured once the panels a key press re-renders have settled
    (two animation frames): a toolbar that grows by a line moves the canvas under the pointer."""
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
    box = page.locator("#canvas").bounding_box()
    view = page.evaluate("() => window.sightline.renderer.view")
    return box["x"] + view["x"] + x * view["scale"], box["y"] + view["y"] + y * view["scale"]


def menu(page, action):
    """Rare actions live in the toolbar's More menu."""
    page.click("#more-menu summary")
    page.click(f"[data-action={action}]")


def saved(page):
    page.wait_for_function("() => document.getElementById('save-state').dataset.state === 'saved'")


def shapes(image):
    return list(Annotation.objects.filter(image=image).order_by("id").values("kind", "label__name", "geometry"))


def test_draw_a_box_with_the_box_tool(setup, page, live_server):
    login(page, live_server)
    open_labeler(page, setup["url"])
    page.keyboard.press("b")
    page.mouse.move(*screen(page, 50, 40))
    page.mouse.down()
    page.mouse.move(*screen(page, 150, 120), steps=5)
    page.mouse.up()
    saved(page)
    [box] = shapes(setup["image"])
    assert (box["kind"], box["label__name"]) == ("box", "gull")
    g = box["geometry"]
    assert [round(g[k]) for k in ("x", "y", "width", "height")] == [50, 40, 100, 80]


def test_draw_a_polygon_then_relabel_undo_and_redo(setup, page, live_server):
    login(page, live_server)
    open_labeler(page, setup["url"])
    page.keyboard.press("n")
    for x, y in [(100, 100), (200, 100), (150, 200)]:
        page.mouse.click(*screen(page, x, y))
    page.keyboard.press("Enter")
    saved(page)
    [polygon] = shapes(setup["image"])
    assert polygon["kind"] == "polygon"
    assert [[round(v) for v in p] for p in polygon["geometry"]["parts"][0]["outer"]] == [
        [100, 100],
        [200, 100],
        [150, 200],
    ]
    page.keyboard.press("v")
    page.mouse.click(*screen(page, 150, 130))  # the person selects the polygon: now hotkey 2 relabels it
    page.keyboard.press("2")
    saved(page)
    assert shapes(setup["image"])[0]["label__name"] == "tern"
    page.keyboard.press("Control+z")
    saved(page)
    assert shapes(setup["image"])[0]["label__name"] == "gull"
    page.keyboard.press("Control+z")
    saved(page)
    assert shapes(setup["image"]) == []
    page.keyboard.press("Control+Shift+z")
    saved(page)
    assert [s["kind"] for s in shapes(setup["image"])] == ["polygon"]


def test_unsaved_work_survives_a_reload(setup, page, live_server):
    login(page, live_server)
    open_labeler(page, setup["url"])
    page.route("**/annotations/", lambda route: route.abort() if route.request.method == "PUT" else route.continue_())
    page.keyboard.press("p")
    page.mouse.click(*screen(page, 30, 30))
    page.wait_for_function("() => document.getElementById('save-state').dataset.state === 'offline'")
    assert shapes(setup["image"]) == []
    kept = json.loads(page.evaluate(f"() => localStorage.getItem('sightline:pending:{setup['image'].id}')"))
    assert [s["kind"] for s in kept["shapes"]] == ["points"]
    page.unroute("**/annotations/")
    open_labeler(page, setup["url"])
    saved(page)
    [point] = shapes(setup["image"])
    assert [round(v) for v in point["geometry"]["points"][0]] == [30, 30]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("keep-both", [[10, 10], [20, 20]]), ("keep-mine", [[20, 20]]), ("take-theirs", [[10, 10]])],
)
def test_two_browsers_get_the_conflict_dialog(setup, browser, live_server, choice, expected):
    contexts, pages = [], []
    for _ in range(2):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        login(page, live_server)
        open_labeler(page, setup["url"])
        pages.append(page)
    first, second = pages
    first.keyboard.press("p")
    first.mouse.click(*screen(first, 10, 10))
    saved(first)
    second.keyboard.press("p")
    second.mouse.click(*screen(second, 20, 20))
    second.wait_for_selector("#conflict[open]")
    assert second.inner_text("#conflict-text") == "Your version has 1 objects; the saved one (revision 1) has 1."
    assert second.evaluate("() => window.sightline.renderer.ghost.length") == 1  # theirs, drawn over mine
    second.click(f"#conflict [data-action={choice}]")
    saved(second)
    points = sorted([round(v) for v in s["geometry"]["points"][0]] for s in shapes(setup["image"]))
    assert points == expected
    assert second.evaluate("() => window.sightline.store.shapes.length") == len(expected)
    assert second.evaluate("() => window.sightline.renderer.ghost") is None
    for context in contexts:
        context.close()


def test_a_polygon_with_a_second_part_and_a_hole_then_rasterize_and_back(setup, page, live_server):
    login(page, live_server)
    open_labeler(page, setup["url"])
    page.keyboard.press("n")
    for x, y in [(20, 20), (180, 20), (180, 180), (20, 180)]:
        page.mouse.click(*screen(page, x, y))
    page.keyboard.press("Enter")
    page.keyboard.press("g")
    for x, y in [(250, 20), (350, 20), (300, 100)]:
        page.mouse.click(*screen(page, x, y))
    page.keyboard.press("Enter")
    page.keyboard.press("h")
    for x, y in [(60, 60), (140, 60), (140, 140), (60, 140)]:
        page.mouse.click(*screen(page, x, y))
    page.keyboard.press("Enter")
    saved(page)
    [polygon] = shapes(setup["image"])
    parts = polygon["geometry"]["parts"]
    assert [len(p["outer"]) for p in parts] == [4, 3]
    assert [[round(v) for v in point] for point in parts[0]["holes"][0]] == [[60, 60], [140, 60], [140, 140], [60, 140]]
    page.keyboard.press("v")
    page.mouse.click(*screen(page, 30, 30))  # select the polygon: conversions act on the selected object
    menu(page, "rasterize")
    page.wait_for_function("() => window.sightline.store.shapes[0].kind === 'mask'")
    saved(page)
    [mask] = shapes(setup["image"])
    assert mask["kind"] == "mask"
    from annotations.geometry import decode_mask, rasterize

    pixels = decode_mask(mask["geometry"]["rle"])
    expected = decode_mask(rasterize("polygon", polygon["geometry"], width=400, height=300)["rle"])
    assert (pixels == expected).all()
    assert not pixels[100, 100] and pixels[30, 30] and pixels[40, 300]  # the hole, the square, the triangle
    page.click("#more-menu summary")
    page.uncheck("#simplify")
    page.click("[data-action=polygonize]")
    page.wait_for_function("() => window.sightline.store.shapes[0].kind === 'polygon'")
    saved(page)
    [back] = shapes(setup["image"])
    assert back["kind"] == "polygon"
    assert len(back["geometry"]["parts"]) == 2
    assert sum(len(p["holes"]) for p in back["geometry"]["parts"]) == 1


def test_keypoints_from_the_label_template_can_be_placed_and_hidden(setup, page, live_server):
    face = Label.objects.create(
        project=setup["project"], name="face", color="#0000ff", hotkey=3, keypoint_template=["left eye", "right eye"]
    )
    login(page, live_server)
    open_labeler(page, setup["url"])
    page.keyboard.press("3")
    page.keyboard.press("b")
    page.mouse.move(*screen(page, 100, 100))
    page.mouse.down()
    page.mouse.move(*screen(page, 190, 160), steps=4)
    page.mouse.up()
    saved(page)
    [box] = Annotation.objects.filter(image=setup["image"]).values("label_id", "keypoints")
    assert box["label_id"] == face.id
    assert [(k["name"], round(k["x"]), round(k["y"]), k["visible"]) for k in box["keypoints"]] == [
        ("left eye", 130, 130, True),
        ("right eye", 160, 130, True),
    ]
    page.keyboard.press("v")
    page.mouse.click(*screen(page, 110, 150))  # select the box; its keypoints then take drags
    page.mouse.move(*screen(page, 130, 130))
    page.mouse.down()
    page.mouse.move(*screen(page, 125, 120), steps=3)
    page.mouse.up()
    page.keyboard.down("Alt")
    page.mouse.click(*screen(page, 160, 130))
    page.keyboard.up("Alt")
    page.wait_for_function("() => window.sightline.store.shapes[0].keypoints[1].visible === false")
    saved(page)
    [box] = Annotation.objects.filter(image=setup["image"]).values("keypoints")
    assert [(round(k["x"]), round(k["y"]), k["visible"]) for k in box["keypoints"]] == [
        (125, 120, True),
        (160, 130, False),
    ]


def stroke(page, points):
    page.mouse.move(*screen(page, *points[0]))
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*screen(page, *point), steps=4)
    page.mouse.up()


def test_bitmap_brush_eraser_and_fill(setup, page, live_server):
    from annotations.geometry import decode_mask

    login(page, live_server)
    open_labeler(page, setup["url"])
    page.keyboard.press("i")
    stroke(page, [(50, 50), (150, 50)])
    saved(page)
    [mask] = shapes(setup["image"])
    pixels = decode_mask(mask["geometry"]["rle"])
    assert (mask["kind"], bool(pixels[50, 60]), bool(pixels[50, 140]), bool(pixels[80, 100])) == (
        "mask",
        True,
        True,
        False,
    )
    page.keyboard.press("r")
    stroke(page, [(100, 30), (100, 70)])
    saved(page)
    pixels = decode_mask(shapes(setup["image"])[0]["geometry"]["rle"])
    assert (bool(pixels[50, 100]), bool(pixels[50, 60]), bool(pixels[50, 140])) == (False, True, True)
    # A new object: a closed outline, then G fills it.
    page.keyboard.press("n")
    page.keyboard.press("e")
    stroke(page, [(200, 150), (300, 150), (300, 250), (200, 250), (200, 150)])
    page.keyboard.press("g")
    page.mouse.click(*screen(page, 250, 200))
    page.wait_for_function(
        "() => window.sightline.store.shapes.length === 2 && document.getElementById('save-state').dataset.state === 'saved'"
    )
    saved(page)
    filled = decode_mask(shapes(setup["image"])[1]["geometry"]["rle"])
    assert (bool(filled[200, 250]), bool(filled[150, 250]), bool(filled[100, 250])) == (True, True, False)


def test_polyline_add_and_remove_points_and_polygon_edge_insert(setup, page, live_server):
    login(page, live_server)
    open_labeler(page, setup["url"])
    page.keyboard.press("l")
    for point in [(10, 10), (60, 10)]:
        page.mouse.click(*screen(page, *point))
    page.keyboard.press("Enter")
    page.keyboard.press("k")
    page.mouse.click(*screen(page, 60, 60))
    page.mouse.click(*screen(page, 110, 60))
    saved(page)
    [line] = shapes(setup["image"])
    assert [[round(v) for v in p] for p in line["geometry"]["points"]] == [[10, 10], [60, 10], [60, 60], [110, 60]]
    page.keyboard.press("r")
    page.mouse.click(*screen(page, 60, 10))
    saved(page)
    assert [[round(v) for v in p] for p in shapes(setup["image"])[0]["geometry"]["points"]] == [
        [10, 10],
        [60, 60],
        [110, 60],
    ]
    page.keyboard.press("Escape")
    page.keyboard.press("n")
    for point in [(200, 100), (300, 100), (300, 200)]:
        page.mouse.click(*screen(page, *point))
    page.keyboard.press("Enter")
    page.keyboard.press("v")
    page.mouse.click(*screen(page, 280, 150))  # select the polygon: its edges then take new vertices
    page.mouse.move(*screen(page, 250, 100))  # the middle of the top edge
    page.mouse.down()
    page.mouse.move(*screen(page, 250, 80), steps=3)
    page.mouse.up()
    saved(page)
    polygon = shapes(setup["image"])[1]
    assert [[round(v) for v in p] for p in polygon["geometry"]["parts"][0]["outer"]] == [
        [200, 100],
        [250, 80],
        [300, 100],
        [300, 200],
    ]


def test_label_panel_hide_show_and_fixed_aspect_boxes(setup, page, live_server):
    login(page, live_server)
    open_labeler(page, setup["url"])
    page.fill("#label-name", "heron")
    page.click("#label-create button")
    page.wait_for_selector("#label-list li[aria-selected=true] >> text=heron")
    page.click("#more-menu summary")
    page.fill("#aspect", "2:1")
    page.dispatch_event("#aspect", "change")
    page.click("[data-tool=box]")
    page.mouse.move(*screen(page, 100, 100))
    page.mouse.down()
    page.mouse.move(*screen(page, 140, 180), steps=3)
    page.mouse.up()
    page.wait_for_function("() => window.sightline.store.shapes.length === 1")
    saved(page)
    [box] = shapes(setup["image"])
    assert box["label__name"] == "heron"
    assert [round(box["geometry"][k]) for k in ("width", "height")] == [160, 80]
    page.click("[data-action=hide-all]")
    page.wait_for_function("() => window.sightline.renderer.drawn === 0")
    page.click("[data-action=show-all]")
    page.wait_for_function("() => window.sightline.renderer.drawn === 1")
    assert Label.objects.filter(project=setup["project"], name="heron").exists()


def test_classification_labels_with_plus_minus_and_the_default_star(setup, page, live_server):
    login(page, live_server)
    open_labeler(page, setup["url"])
    page.click("#classification-list li:has-text('gull') button")  # +
    saved(page)
    page.click("#classification-list li:has-text('tern') button")  # +
    saved(page)
    page.click("#classification-list li:has-text('tern') button:has-text('☆')")  # star: tern is the default
    saved(page)
    document = page.evaluate(f"() => fetch('/api/images/{setup['image'].id}/annotations/').then(r => r.json())")
    assert document["classifications"] == [
        {"label": setup["tern"].id, "name": "tern", "default": True},
        {"label": setup["gull"].id, "name": "gull", "default": False},
    ]
    page.click("#classification-list li:has-text('tern') button:has-text('−')")  # remove the default
    saved(page)
    document = page.evaluate(f"() => fetch('/api/images/{setup['image'].id}/annotations/').then(r => r.json())")
    assert document["classifications"] == [{"label": setup["gull"].id, "name": "gull", "default": True}]
