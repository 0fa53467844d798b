package main

import (
	"image"
	"image/color"
	"image/draw"
	"strconv"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/gofont/gomonobold"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

// cell is one character of the terminal with its looks.
type cell struct {
	r            rune
	fg, bg       color.Color
	bold, faint  bool
	reverse, und bool
}

// The terminal's colors: a dark theme, xterm's 16 and its 256-color cube.
var (
	defaultFG = color.RGBA{0xd0, 0xd0, 0xd0, 0xff}
	defaultBG = color.RGBA{0x1c, 0x1c, 0x24, 0xff}
	palette16 = []color.RGBA{
		{0x1c, 0x1c, 0x24, 0xff}, {0xe0, 0x6c, 0x75, 0xff}, {0x98, 0xc3, 0x79, 0xff}, {0xe5, 0xc0, 0x7b, 0xff},
		{0x61, 0xaf, 0xef, 0xff}, {0xc6, 0x78, 0xdd, 0xff}, {0x56, 0xb6, 0xc2, 0xff}, {0xd0, 0xd0, 0xd0, 0xff},
		{0x5c, 0x63, 0x70, 0xff}, {0xff, 0x7b, 0x86, 0xff}, {0xb5, 0xe8, 0x90, 0xff}, {0xff, 0xd6, 0x8a, 0xff},
		{0x7e, 0xc7, 0xff, 0xff}, {0xde, 0x95, 0xf0, 0xff}, {0x7f, 0xd8, 0xe3, 0xff}, {0xff, 0xff, 0xff, 0xff},
	}
)

// color256 is xterm's 256-color palette.
func color256(n int) color.Color {
	switch {
	case n < 16:
		return palette16[n]
	case n < 232:
		n -= 16
		level := func(v int) uint8 {
			if v == 0 {
				return 0
			}
			return uint8(55 + 40*v)
		}
		return color.RGBA{level(n / 36), level(n / 6 % 6), level(n % 6), 0xff}
	default:
		g := uint8(8 + 10*(n-232))
		return color.RGBA{g, g, g, 0xff}
	}
}

// parseANSI reads text with SGR escape sequences (what `tmux capture-pane
// -e` prints) into rows of cells; other escapes are dropped.
func parseANSI(text string) [][]cell {
	var rows [][]cell
	cur := cell{fg: defaultFG, bg: defaultBG}
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		var row []cell
		rs := []rune(line)
		for i := 0; i < len(rs); i++ {
			if rs[i] == 0x1b && i+1 < len(rs) && rs[i+1] == '[' {
				j := i + 2
				for j < len(rs) && (rs[j] < 0x40 || rs[j] > 0x7e) {
					j++
				}
				if j < len(rs) && rs[j] == 'm' {
					applySGR(&cur, string(rs[i+2:j]))
				}
				i = j
				continue
			}
			c := cur
			c.r = rs[i]
			row = append(row, c)
		}
		rows = append(rows, row)
	}
	return rows
}

// applySGR applies one "ESC [ ... m" to the current looks.
func applySGR(c *cell, params string) {
	ps := strings.Split(params, ";")
	for i := 0; i < len(ps); i++ {
		n, _ := strconv.Atoi(ps[i])
		switch {
		case n == 0:
			*c = cell{fg: defaultFG, bg: defaultBG}
		case n == 1:
			c.bold = true
		case n == 2:
			c.faint = true
		case n == 4:
			c.und = true
		case n == 7:
			c.reverse = true
		case n == 22:
			c.bold, c.faint = false, false
		case n == 24:
			c.und = false
		case n == 27:
			c.reverse = false
		case n >= 30 && n <= 37:
			c.fg = palette16[n-30]
		case n >= 90 && n <= 97:
			c.fg = palette16[n-90+8]
		case n == 39:
			c.fg = defaultFG
		case n >= 40 && n <= 47:
			c.bg = palette16[n-40]
		case n >= 100 && n <= 107:
			c.bg = palette16[n-100+8]
		case n == 49:
			c.bg = defaultBG
		case (n == 38 || n == 48) && i+2 < len(ps) && ps[i+1] == "5":
			v, _ := strconv.Atoi(ps[i+2])
			setColor(c, n, color256(v))
			i += 2
		case (n == 38 || n == 48) && i+4 < len(ps) && ps[i+1] == "2":
			r, _ := strconv.Atoi(ps[i+2])
			g, _ := strconv.Atoi(ps[i+3])
			b, _ := strconv.Atoi(ps[i+4])
			setColor(c, n, color.RGBA{uint8(r), uint8(g), uint8(b), 0xff})
			i += 4
		}
	}
}

func setColor(c *cell, which int, col color.Color) {
	if which == 38 {
		c.fg = col
	} else {
		c.bg = col
	}
}

// fallback replaces glyphs Go Mono does not have with ones it has.
var fallback = map[rune]rune{'╭': '┌', '╮': '┐', '╰': '└', '╯': '┘', '✗': 'x', '◐': '●', '…': '.'}

// faces are the regular and bold fonts at one size.
type faces struct{ regular, bold font.Face }

func newFaces(size float64) (faces, error) {
	load := func(ttf []byte) (font.Face, error) {
		f, err := opentype.Parse(ttf)
		if err != nil {
			return nil, err
		}
		return opentype.NewFace(f, &opentype.FaceOptions{Size: size, DPI: 96, Hinting: font.HintingFull})
	}
	r, err := load(gomono.TTF)
	if err != nil {
		return faces{}, err
	}
	b, err := load(gomonobold.TTF)
	return faces{regular: r, bold: b}, err
}

// render draws the cells as a terminal would, cols x rows cells.
func render(rows [][]cell, cols, nrows int, fc faces) *image.RGBA {
	adv, _ := fc.regular.GlyphAdvance('M')
	cw := adv.Ceil()
	m := fc.regular.Metrics()
	ch := (m.Ascent + m.Descent).Ceil() + 2
	const margin = 12
	img := image.NewRGBA(image.Rect(0, 0, cols*cw+2*margin, nrows*ch+2*margin))
	draw.Draw(img, img.Bounds(), &image.Uniform{defaultBG}, image.Point{}, draw.Src)
	for y := 0; y < nrows && y < len(rows); y++ {
		for x, c := range rows[y] {
			if x >= cols {
				break
			}
			fg, bg := c.fg, c.bg
			if c.reverse {
				fg, bg = bg, fg
			}
			if c.faint {
				fg = dim(fg)
			}
			px, py := margin+x*cw, margin+y*ch
			draw.Draw(img, image.Rect(px, py, px+cw, py+ch), &image.Uniform{bg}, image.Point{}, draw.Src)
			face := fc.regular
			if c.bold {
				face = fc.bold
			}
			r := c.r
			if _, ok := face.GlyphAdvance(r); !ok {
				if f, has := fallback[r]; has {
					r = f
				}
			}
			if r != ' ' {
				d := font.Drawer{Dst: img, Src: &image.Uniform{fg}, Face: face, Dot: fixed.P(px, py+m.Ascent.Ceil()+1)}
				d.DrawString(string(r))
			}
			if c.und {
				draw.Draw(img, image.Rect(px, py+ch-2, px+cw, py+ch-1), &image.Uniform{fg}, image.Point{}, draw.Src)
			}
		}
	}
	return img
}

// dim halves a color towards the background.
func dim(c color.Color) color.Color {
	r, g, b, _ := c.RGBA()
	br, bgc, bb, _ := defaultBG.RGBA()
	mix := func(a, z uint32) uint8 { return uint8((a + z) / 2 >> 8) }
	return color.RGBA{mix(r, br), mix(g, bgc), mix(b, bb), 0xff}
}
