"""Media I/O on PyAV / Pillow: round trips, resampling in time, resize policy, masks, bad files."""

from __future__ import annotations

import os

import numpy as np
import pytest

from vacelab import media
from vacelab.errors import InputError


def ramp_video(frames: int, height: int = 64, width: int = 96) -> np.ndarray:
    """Frame i is a flat gray of level 8*i (readable back after lossy coding), with a colour gradient."""
    video = np.empty((frames, height, width, 3), np.uint8)
    for i in range(frames):
        video[i] = 8 * i
    video[..., 1] = np.minimum(video[..., 1], 200)
    return video


def frame_index(frame: np.ndarray) -> int:
    return int(round(frame[..., 0].mean() / 8))


def test_mp4_round_trip(tmp_path):
    video = ramp_video(24)
    path = tmp_path / "clip.mp4"
    media.write_mp4(path, video, 24)
    back, fps = media.read_video(path)
    assert back.shape == video.shape and back.dtype == np.uint8
    assert fps == pytest.approx(24)
    assert np.abs(back.astype(int) - video).mean() < 3
    assert [frame_index(f) for f in back] == list(range(24))


def test_decoding_grows_past_a_file_that_misstates_its_length(tmp_path, monkeypatch):
    from vacelab.media import read

    path = tmp_path / "clip.mp4"
    media.write_mp4(path, ramp_video(24), 24)
    whole, _ = media.read_video(path)
    monkeypatch.setattr(read, "_expected_frames", lambda *_: 2)  # the buffer is preallocated for 2 frames
    grown, _ = media.read_video(path)
    assert len(whole) == 24
    np.testing.assert_array_equal(grown, whole)
    monkeypatch.setattr(read, "_expected_frames", lambda *_: 10**13)  # a length no memory could hold
    np.testing.assert_array_equal(media.read_video(path)[0], whole)


def test_fps_resampling_keeps_duration(tmp_path):
    path = tmp_path / "clip.mp4"
    media.write_mp4(path, ramp_video(30), 30)  # 1 s
    half, fps = media.read_video(path, fps=15)
    assert fps == 15 and len(half) == 15  # still 1 s
    assert [frame_index(f) for f in half] == list(range(0, 30, 2))
    double, _ = media.read_video(path, fps=60)
    assert 59 <= len(double) <= 60
    assert [frame_index(f) for f in double[:8]] == [0, 0, 1, 1, 2, 2, 3, 3]
    late, _ = media.read_video(path, fps=15, start=0.5, max_frames=4)
    assert [frame_index(f) for f in late] == [15, 17, 19, 21]


def test_cover_crop_sizes():
    assert media.cover_size((1080, 1920), (480, 832)) == (480, 853)
    landscape = np.zeros((1080, 1920, 3), np.uint8)
    assert media.cover_crop(landscape, (480, 832)).shape == (480, 832, 3)
    portrait = np.zeros((1920, 1080, 3), np.uint8)
    assert media.cover_crop(portrait, (832, 480)).shape == (832, 480, 3)
    # Centre crop: a marked centre column stays in the middle.
    image = np.zeros((100, 300, 3), np.uint8)
    image[:, 148:152] = 255
    out = media.cover_crop(image, (100, 100))
    assert out.shape == (100, 100, 3) and out[:, 48:52].mean() > 200 and out[:, :40].max() == 0


def test_fit_on_canvas_is_white_letterbox():
    ref = np.zeros((50, 50, 3), np.uint8)
    canvas = media.fit_on_canvas(ref, (64, 128))
    assert canvas.shape == (64, 128, 3)
    assert canvas[:, :10].min() == 255 and canvas[:, 60:68].max() == 0


def test_save_and_load_mask_exact(tmp_path):
    rng = np.random.default_rng(0)
    for shape in [(5, 16, 16), (3, 7, 13), (1, 1, 1)]:
        mask = rng.random(shape) < 0.5
        path = tmp_path / f"mask_{shape[2]}.npy"
        media.save_mask(path, mask)
        back = media.load_mask(path)
        assert back.dtype == bool
        np.testing.assert_array_equal(back, mask)


def test_save_mask_writes_the_same_bytes_packed_or_not(tmp_path):
    """save_mask (written 64 frames at a time) gives np.save's file of the shape and bits, whether the mask
    is bool or a PackedMask (the bits written as they are: a broadcast one-frame mask too)."""
    mask = np.random.default_rng(3).random((70, 9, 21)) < 0.3
    header = np.array(mask.shape, np.int64).view(np.uint8)
    np.save(tmp_path / "np.npy", np.concatenate([header, np.packbits(mask, axis=-1).ravel()]))
    media.save_mask(tmp_path / "bool.npy", mask)
    media.save_mask(tmp_path / "packed.npy", media.PackedMask.of(mask))
    expected = (tmp_path / "np.npy").read_bytes()
    assert (tmp_path / "bool.npy").read_bytes() == expected == (tmp_path / "packed.npy").read_bytes()
    one = media.PackedMask.of(mask[:1])
    media.save_mask(tmp_path / "one.npy", media.PackedMask(np.broadcast_to(one.bits, (70, 9, 3)), 21))
    np.testing.assert_array_equal(media.load_mask(tmp_path / "one.npy"), np.repeat(mask[:1], 70, axis=0))


def test_packed_mask_gives_the_eager_arrays(tmp_path):
    """load_mask(packed=True) indexed as a run indexes a job's mask gives exactly the unpacked arrays."""
    mask = np.random.default_rng(2).random((9, 12, 21)) < 0.3
    media.save_mask(tmp_path / "m.npy", mask)
    lazy = media.load_mask(tmp_path / "m.npy", packed=True)
    assert lazy.shape == mask.shape and len(lazy) == 9 and lazy.ndim == 3 and lazy.dtype == bool
    for key in (4, -1, slice(2, 7), np.s_[3:8, ..., None], np.s_[::2, ::3, 1::2], np.s_[1, 5:], [0, 8, 3]):
        np.testing.assert_array_equal(lazy[key], mask[key])
    np.testing.assert_array_equal(np.asarray(lazy), mask)
    np.testing.assert_array_equal(np.array(list(lazy)), mask)  # iterated frame by frame
    media.release(lazy)  # its pages let go: still readable
    np.testing.assert_array_equal(lazy[5], mask[5])


def test_packed_mask_reads_like_the_bool_array():
    """A prepared inpaint job's mask is packed; the array API a user reaches for gives the bool array's
    answers (whole-mask sum, mean and any from the bits)."""
    mask = np.random.default_rng(3).random((5, 7, 13)) < 0.4
    packed = media.PackedMask.of(mask)
    assert packed.size == mask.size and packed.sum() == mask.sum() and packed.mean() == mask.mean()
    assert packed.any() and not media.PackedMask.of(np.zeros((2, 3, 9), bool)).any()
    calls = (("sum", (0,)), ("mean", ((1, 2),)), ("any", ((1, 2),)), ("all", ()), ("all", (0,)),
             ("astype", (np.uint8,)), ("max", ()), ("nonzero", ()), ("reshape", (5, -1)))  # fmt: skip
    for name, args in calls:
        np.testing.assert_array_equal(getattr(packed, name)(*args), getattr(mask, name)(*args))
    np.testing.assert_array_equal(~packed, ~mask)
    np.testing.assert_array_equal(packed & mask[::-1], mask & mask[::-1])
    np.testing.assert_array_equal(mask[::-1] | packed, mask[::-1] | mask)
    with pytest.raises(AttributeError, match="no attribute 'fill'"):
        packed.fill(True)  # nothing that would write to it


@pytest.mark.parametrize("fps, start, frames", [(16, 0.0, None), (10, 0.5, 7), (24, 1.0, 30)])
def test_stream_video_gives_read_video_frames(fps, start, frames):
    """stream_video (export's source, decoded as it is written) gives read_video's frames: the same times,
    the same frames repeated or skipped to make the rate."""
    from vacelab.sample import sample_path

    whole, _ = media.read_video(sample_path(), fps=fps, start=start, max_frames=frames)
    streamed = list(media.stream_video(sample_path(), fps=fps, start=start, max_frames=frames))
    assert len(streamed) == len(whole) and (frames is None or len(whole) == frames)
    np.testing.assert_array_equal(np.stack(streamed), whole)


def test_save_and_load_array_exact(tmp_path):
    video = np.random.default_rng(1).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    media.save_array(tmp_path / "v.npy", video)
    np.testing.assert_array_equal(media.load_array(tmp_path / "v.npy"), video)
    np.testing.assert_array_equal(media.load_array(tmp_path / "v.npy", mmap=True), video)


def test_gif_reading(tmp_path):
    video = np.zeros((6, 32, 48, 3), np.uint8)
    for i in range(6):
        video[i, 8:16, 8 * i : 8 * i + 8] = 255  # a white square moving right
    media.write_gif(tmp_path / "a.gif", video, 8)
    back, fps = media.read_video(tmp_path / "a.gif")
    assert back.shape == (6, 32, 48, 3)
    assert fps == pytest.approx(8, rel=0.1)
    np.testing.assert_array_equal(back, video)


def test_gif_is_streamed_as_pillow_writes_it():
    """stream_gif writes the bytes of Pillow's own save_all writer (which holds every frame), repeated
    frames (merged into a longer one) and a one-frame clip (a still image) included."""
    import io

    from PIL import Image

    from vacelab.media.write import stream_gif

    video = np.zeros((7, 32, 48, 3), np.uint8)
    for i in range(7):
        video[i, 8:16, 6 * i : 6 * i + 8] = (255, 40 * i, 0)
    video[3] = video[2]  # the same frame twice, then a change in a corner only
    video[5] = video[4]
    video[5, 30:, 40:] = 90
    palette = Image.fromarray(video.reshape(-1, 48, 3)).quantize(255)
    for clip in (video, video[:1], video[2:4]):
        frames = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in clip]
        pillow, streamed = io.BytesIO(), io.BytesIO()
        frames[0].save(pillow, format="GIF", save_all=True, append_images=frames[1:], duration=62, loop=0,
                       optimize=False)  # fmt: skip
        stream_gif(streamed, iter(frames), 62)
        assert streamed.getvalue() == pillow.getvalue()


def test_image_folder_reading_natural_order(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    video = ramp_video(12, 32, 48)
    for i, frame in enumerate(video):
        media.write_png(folder / f"frame{i + 1}.png", frame)  # frame10 after frame9, not after frame1
    back, fps = media.read_video(folder, fps=12)
    assert fps == 12
    np.testing.assert_array_equal(back, video)
    resized, _ = media.read_video(folder, size=(16, 16), max_frames=3)
    assert resized.shape == (3, 16, 16, 3)


def test_read_mask_image_and_video(tmp_path):
    still = np.zeros((32, 48, 3), np.uint8)
    still[8:24, 16:32] = 255
    media.write_png(tmp_path / "m.png", still)
    mask = media.read_mask(tmp_path / "m.png", size=(32, 48), frames=5)
    assert mask.shape == (5, 32, 48) and mask.dtype == bool
    assert mask[:, 8:24, 16:32].all() and mask.sum() == 5 * 16 * 16
    frames = np.zeros((9, 32, 48), bool)
    frames[:, :, 24:] = True
    media.write_mp4(tmp_path / "m.mp4", frames, 16)
    back = media.read_mask(tmp_path / "m.mp4", size=(32, 48), frames=9)
    assert back[:, 4:-4, 28:].all() and not back[:, 4:-4, :20].any()  # H.264 blurs only the edge


def test_non_binary_mask_is_refused(tmp_path):
    gray = np.random.default_rng(2).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    media.write_png(tmp_path / "noise.png", gray)
    with pytest.raises(InputError, match="not a black/white mask"):
        media.read_mask(tmp_path / "noise.png", size=(32, 48), frames=1)


def test_bad_files_raise_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        media.read_video(tmp_path / "missing.mp4")
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    with pytest.raises(InputError, match="not a readable video"):
        media.read_video(fake)
    with pytest.raises(InputError, match="not a readable image"):
        media.read_image(fake.rename(tmp_path / "fake.png"))


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), media.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []
    media.write_text(target, "done")
    assert target.read_text() == "done" and len(list(tmp_path.iterdir())) == 1


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    """Files and job folders built under temporary names end up with umask permissions, not 0600/0700."""
    from vacelab.folders import write_folder

    old = os.umask(0o022)
    try:
        media.write_text(tmp_path / "a.txt", "x")
        folder = write_folder(tmp_path / "job", lambda d: media.write_text(d / "b.txt", "y"))
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert folder.stat().st_mode & 0o777 == 0o755
    assert (folder / "b.txt").stat().st_mode & 0o777 == 0o644
