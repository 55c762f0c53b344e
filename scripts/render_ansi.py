#!/usr/bin/env python3
"""Render a terminal capture (tmux capture-pane -e -p output, with escape codes) to a PNG.

usage: render_ansi.py CAPTURE.txt OUT.png --cols 120 --rows 40
A real terminal emulator (pyte) interprets the escape codes; each cell is drawn with DejaVu Sans Mono in the
xterm palette, so the picture shows exactly what the terminal showed.
"""
import argparse

import pyte
from PIL import Image, ImageDraw, ImageFont

ANSI = {
    "black": (0x1d, 0x1f, 0x21), "red": (0xcc, 0x33, 0x33), "green": (0x4e, 0x9a, 0x06),
    "brown": (0xc4, 0xa0, 0x00), "yellow": (0xc4, 0xa0, 0x00), "blue": (0x34, 0x65, 0xa4),
    "magenta": (0x75, 0x50, 0x7b), "cyan": (0x06, 0x98, 0x9a), "white": (0xd3, 0xd7, 0xcf),
    "brightblack": (0x55, 0x57, 0x53), "brightred": (0xef, 0x29, 0x29), "brightgreen": (0x8a, 0xe2, 0x34),
    "brightbrown": (0xfc, 0xe9, 0x4f), "brightyellow": (0xfc, 0xe9, 0x4f), "brightblue": (0x72, 0x9f, 0xcf),
    "brightmagenta": (0xad, 0x7f, 0xa8), "brightcyan": (0x34, 0xe2, 0xe2), "brightwhite": (0xee, 0xee, 0xec),
}
DEFAULT_FG = (0xd0, 0xd0, 0xd0)
DEFAULT_BG = (0x16, 0x18, 0x1c)
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
FONT_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"


def color(value, default):
    if value == "default":
        return default
    if value in ANSI:
        return ANSI[value]
    if isinstance(value, str) and len(value) == 6:
        try:
            return tuple(int(value[i:i + 2], 16) for i in (0, 2, 4))
        except ValueError:
            pass
    return default


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("capture")
    ap.add_argument("out")
    ap.add_argument("--cols", type=int, default=120)
    ap.add_argument("--rows", type=int, default=40)
    a = ap.parse_args()
    screen = pyte.Screen(a.cols, a.rows)
    stream = pyte.Stream(screen)
    with open(a.capture, encoding="utf-8", errors="replace") as f:
        data = f.read()
    lines = data.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    stream.feed("\r\n".join(lines[: a.rows]))
    font = ImageFont.truetype(FONT, 16)
    bold = ImageFont.truetype(FONT_BOLD, 16)
    cw = int(round(font.getlength("M")))
    ch = 20
    img = Image.new("RGB", (cw * a.cols + 16, ch * a.rows + 16), DEFAULT_BG)
    d = ImageDraw.Draw(img)
    for y in range(a.rows):
        row = screen.buffer[y]
        for x in range(a.cols):
            c = row[x]
            fg, bg = color(c.fg, DEFAULT_FG), color(c.bg, DEFAULT_BG)
            if c.bold and c.fg in ANSI and not c.fg.startswith("bright"):
                fg = ANSI.get("bright" + c.fg, fg)
            if c.reverse:
                fg, bg = bg, fg
            px, py = 8 + x * cw, 8 + y * ch
            if bg != DEFAULT_BG:
                d.rectangle([px, py, px + cw - 1, py + ch - 1], fill=bg)
            if c.data.strip():
                d.text((px, py + 1), c.data, font=bold if c.bold else font, fill=fg)
            if c.underscore:
                d.line([px, py + ch - 2, px + cw - 1, py + ch - 2], fill=fg)
    img.save(a.out)


if __name__ == "__main__":
    main()
