"""Contact sheets for field checks: a video's snapshot frames in a grid, each animal's box drawn
with its distance, so that a person can see at a glance which number belongs to which animal."""

import io

import numpy as np
from PIL import Image, ImageDraw

from chimpact import storage

TILE_WIDTH = 320
MAX_COLUMNS = 8
LEGEND_HEIGHT = 30  # two lines of PIL's default font under the tiles
_COLOURS = ((255, 64, 64), (64, 200, 255), (255, 220, 0), (120, 255, 120), (255, 128, 255))
_WHITE = (255, 255, 255)


def sheet_layout(n_tiles, aspect):
    """(columns, rows, tile height, tile width) of a sheet of `n_tiles` frames of a video whose
    width / height is `aspect`: at most MAX_COLUMNS across, tiles TILE_WIDTH wide with the
    video's aspect, whatever shape the model's frames have (small model frames are enlarged,
    so that the numbers stay readable)."""
    tile_height = max(1, round(TILE_WIDTH / aspect))
    columns = max(1, min(n_tiles, MAX_COLUMNS))
    return columns, -(-max(n_tiles, 1) // columns), tile_height, TILE_WIDTH


def _legend(draw, top):
    """Says under the tiles what the boxes' colours and numbers are."""
    draw.text((3, top + 2), "box colour = detection number in its frame:", fill=_WHITE)
    left = 3 + round(draw.textlength("box colour = detection number in its frame: "))
    for number, colour in enumerate(_COLOURS):
        draw.text((left + 14 * number, top + 2), str(number), fill=colour)
    draw.text((3, top + 16), "label = its distance in m, as in the table", fill=_WHITE)


def contact_sheet(pictures, times, rows, aspect=None):
    """A PIL image of `pictures` (uint8 [n, H, W, 3], the frames at snapshot `times`) with the
    boxes of `rows` (time, detection, x1, y1, x2, y2, distance) drawn on their moment's tile
    (--keep_empty's rows, without a detection, have no box), tiles of the video's `aspect`
    (width / height; default the pictures'), and a legend below."""
    n, height, width = len(pictures), pictures.shape[1], pictures.shape[2]
    columns, n_rows, tile_height, tile_width = sheet_layout(n, aspect or width / height)
    sheet = Image.new("RGB", (columns * tile_width, n_rows * tile_height + LEGEND_HEIGHT))
    for i, (picture, time) in enumerate(zip(pictures, times)):
        tile = Image.fromarray(np.asarray(picture)).resize((tile_width, tile_height))
        draw = ImageDraw.Draw(tile)
        draw.text((3, 2), f"t={time:g} s", fill=_WHITE)
        for row in rows[(rows.time == time) & rows.detection.notna()].itertuples():
            colour = _COLOURS[int(row.detection) % len(_COLOURS)]
            corners = (row.x1 * tile_width, row.y1 * tile_height,
                       row.x2 * tile_width, row.y2 * tile_height)
            draw.rectangle(corners, outline=colour, width=2)
            draw.text((corners[0] + 3, max(corners[1] - 12, 12)), f"{row.distance:.1f} m",
                      fill=colour)
        sheet.paste(tile, ((i % columns) * tile_width, (i // columns) * tile_height))
    _legend(ImageDraw.Draw(sheet), n_rows * tile_height)
    return sheet


def write_sheet(sheet, path):
    """Writes a contact sheet as JPEG (local or gs://), through a temporary name."""
    buffer = io.BytesIO()
    sheet.save(buffer, format="JPEG", quality=90)
    storage.atomic_write(path, buffer.getvalue())
