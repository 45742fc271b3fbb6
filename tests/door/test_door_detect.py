"""happyhouse.door.detect: MTCNN detection and alignment on photos made from the course's faces."""
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from happyhouse.door import detect as fd
from happyhouse.image_io import read_rgb

GREY = (128, 128, 128)


def group_photo(images, names, size=(260, 480), scale=2.0, angle=0.0):
    """A (260, 480, 3) photo with the course faces ``names`` side by side, scaled, optionally rotated."""
    canvas = np.full(size + (3,), 128, np.uint8)
    x = 20
    for name in names:
        face = cv2.resize(read_rgb(images / name), None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        canvas[30:30 + face.shape[0], x:x + face.shape[1]] = face
        x += face.shape[1] + 40
    if angle:
        turn = cv2.getRotationMatrix2D((size[1] / 2, size[0] / 2), angle, 1.0)
        canvas = cv2.warpAffine(canvas, turn, (size[1], size[0]), borderValue=GREY)
    return canvas


def encode(rgb, fmt="JPEG", mode=None, exif_orientation=None):
    img = Image.fromarray(rgb)
    if mode:
        img = img.convert(mode)
    kwargs = {}
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def test_every_face_has_box_landmarks_confidence(course_images):
    photo = group_photo(course_images, ["younes.jpg", "arnaud.jpg"])
    faces = fd.detect_faces(photo)
    assert len(faces) == 2
    xs = sorted(f.box[0] for f in faces)
    assert xs[0] < 240 < xs[1]  # one face in each half
    for f in faces:
        x, y, w, h = f.box
        assert w > 40 and h > 40 and f.confidence >= fd.MIN_CONFIDENCE
        assert set(f.landmarks) == set(fd.LANDMARKS)
        for lx, ly in f.landmarks.values():
            assert x - 2 <= lx <= x + w + 2 and y - 2 <= ly <= y + h + 2
        assert f.landmarks["left_eye"][0] < f.landmarks["right_eye"][0]


def test_openface_alignment_puts_eyes_and_nose_on_the_template(course_images):
    photo = group_photo(course_images, ["younes.jpg"], angle=20)
    (face,) = fd.detect_faces(photo)
    (lx, ly), (rx, ry) = face.landmarks["left_eye"], face.landmarks["right_eye"]
    assert abs(np.degrees(np.arctan2(ry - ly, rx - lx))) > 10  # the photo is tilted
    crop = fd.align_openface(photo, face, 96)
    assert crop.shape == (96, 96, 3) and crop.dtype == np.uint8
    (again,) = fd.detect_faces(crop)
    found = np.array([again.landmarks[k] for k in ("left_eye", "right_eye", "nose")])
    np.testing.assert_allclose(found, fd.OPENFACE_TEMPLATE * 96, atol=5)


def test_facenet_crop_keeps_the_face_centred_with_margin(course_images):
    photo = group_photo(course_images, ["kian.jpg"])
    (face,) = fd.detect_faces(photo)
    crop = fd.crop_facenet(photo, face, 160)
    assert crop.shape == (160, 160, 3)
    (again,) = fd.detect_faces(crop)
    x, y, w, h = again.box
    assert abs((x + w / 2) - 80) < 12 and abs((y + h / 2) - 80) < 12
    assert 0.55 < w / 160 < 0.85  # facenet's margin: the face fills about 116 of 160 px


def test_large_photos_are_searched_shrunk_and_mapped_back(course_images):
    photo = group_photo(course_images, ["arnaud.jpg"])
    (small,) = fd.detect_faces(photo)
    big = cv2.resize(photo, None, fx=6, fy=6, interpolation=cv2.INTER_LINEAR)  # 2880 x 1560
    assert max(big.shape) > fd.DETECT_MAX_SIDE
    (large,) = fd.detect_faces(big)
    face_size = small.box[3] * 6
    np.testing.assert_allclose(large.box, np.array(small.box) * 6, atol=0.1 * face_size)
    np.testing.assert_allclose(large.landmarks["nose"], np.array(small.landmarks["nose"]) * 6, atol=0.05 * face_size)
    assert fd.crop_facenet(big, large).shape == (160, 160, 3)


def test_precropped_course_faces_are_used_whole(course_images):
    image = read_rgb(course_images / "camera_0.jpg")
    faces, crops = fd.face_crops(image, 160)
    assert len(faces) == 1 and faces[0].box == (0, 0, 96, 96)
    assert crops[0] is image and faces[0].crop == "whole"
    faces, crops = fd.face_crops(image, 160, crop="align")
    assert faces[0].box != (0, 0, 96, 96) and crops[0].shape == (160, 160, 3) and faces[0].crop == "aligned"
    faces, crops = fd.face_crops(np.zeros((50, 70, 3), np.uint8), 96, crop="whole")
    assert faces[0].box == (0, 0, 70, 50) and faces[0].landmarks == {}


@pytest.mark.parametrize("variant", ["exif-rotated", "grey", "rgba-png", "palette-png", "cmyk-jpeg", "16-bit-png"])
def test_any_photo_format_finds_the_face(course_images, tmp_path, variant):
    photo = group_photo(course_images, ["younes.jpg"])
    upright = fd.detect_faces(photo)[0].box
    if variant == "exif-rotated":  # pixels stored turned 90 degrees, EXIF says to turn them back
        data = encode(np.ascontiguousarray(np.rot90(photo, k=1)), exif_orientation=6)
    elif variant == "grey":
        data = encode(photo, mode="L")
    elif variant == "rgba-png":
        data = encode(np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)]), "PNG")
    elif variant == "palette-png":
        data = encode(photo, "PNG", mode="P")
    elif variant == "cmyk-jpeg":
        data = encode(photo, mode="CMYK")
    else:
        grey16 = (cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257)
        buf = io.BytesIO()
        Image.fromarray(grey16).save(buf, "PNG")
        data = buf.getvalue()
    path = tmp_path / f"photo-{variant}"
    path.write_bytes(data)
    image = read_rgb(path)
    assert image.shape == photo.shape and image.dtype == np.uint8
    faces = fd.detect_faces(image)
    assert len(faces) == 1
    np.testing.assert_allclose(faces[0].box, upright, atol=12)


def test_one_face_errors(course_images):
    with pytest.raises(fd.FaceNotFoundError, match="blank.png: no face found"):
        fd.one_face(np.full((240, 320, 3), 200, np.uint8), 160, what="blank.png")
    with pytest.raises(fd.FaceNotFoundError, match=r"group.jpg: 2 faces found .* where one is expected"):
        fd.one_face(group_photo(course_images, ["younes.jpg", "arnaud.jpg"]), 160, what="group.jpg")


def test_candidate_batches_padded_to_a_few_sizes_find_the_same_faces(course_images, monkeypatch):
    assert [fd.padded_rows(n) for n in (0, 1, 16, 17, 100)] == [0, 16, 16, 32, 128]
    photo = group_photo(course_images, ["younes.jpg", "kian.jpg", "andrew.jpg"], scale=1.2)
    padded = fd.detect_faces(photo)                        # the default: R-Net/O-Net batches padded
    monkeypatch.setattr(fd, "PAD_BATCHES_FROM", 0)
    plain = fd.detect_faces(photo)
    assert len(plain) == 3 and [f.box for f in padded] == [f.box for f in plain]
    np.testing.assert_allclose([f.confidence for f in padded], [f.confidence for f in plain], atol=1e-5)


def test_a_frame_without_candidates_never_runs_a_network_on_no_rows(monkeypatch):
    """An empty hall: P-Net finds nothing, and R-Net/O-Net are skipped, not run on zero rows (mtcnn
    catches the error that makes, and each one left about 0.8 KB behind in TensorFlow: a camera's
    memory grew with every empty frame)."""
    rows = []
    run = fd.padded_call
    monkeypatch.setattr(fd, "padded_call", lambda graph, x: rows.append(int(x.shape[0])) or run(graph, x))
    y, x = np.mgrid[0:480, 0:640]
    hall = np.repeat((90 + 0.1 * x + 0.15 * y).astype(np.uint8)[..., None], 3, axis=2)
    assert fd.detect_faces(hall) == [] and 0 not in rows
