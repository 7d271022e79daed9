//! The drawing backend: a canvas of palette indices, one byte per pixel.
//!
//! A chart is mostly flat colour. Rendered to RGB by plotters' bitmap backend, its PNG
//! took 20 ms of deflate for 125 KB, or 4 ms for 600 KB with a fast deflate. With one
//! palette byte per pixel, a fast deflate takes a third of the data and writes under
//! 100 KB in about 2 ms (measured on the 500-bar chart), losslessly, if it has at most
//! 256 colours. Plotters anti-aliases text and sloped lines at any of 256 coverage
//! levels, so a full chart had 974 colours, 718 of them in 0.3% of the pixels, all
//! glyph and line edges. This canvas therefore
//!
//! - rounds edge coverage to halves ([`LEVELS`]; edges stay visibly smoothed), and
//! - holds at most 256 colours by construction: the theme's colours are in the palette
//!   from the start; when it is full, the colours no pixel has any more (blends drawn
//!   over since) are dropped; and only if 256 colours are still on the canvas does a
//!   new blend take the nearest one (the full default chart shows about 210 and never
//!   gets there).
//!
//! The canvas *is* the rendered image: `render_rgb` expands it and `render_png` writes
//! it, so the PNG is lossless to the rendered pixels. Filling by index is also a third
//! of the memory traffic of filling RGB.

use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, DrawingBackend, DrawingErrorKind,
};

/// Coverage steps of an edge pixel above zero: halves. Quarters left the full chart
/// with up to 292 colours on the canvas at once (drawn as the nearest colour past 256:
/// 1,900 pixels), thirds still 14 on some symbols; halves none (tested below and in
/// `lib.rs`).
const LEVELS: f64 = 2.0;

/// Slots of the colour index: four per palette entry at most, so probes stay short.
const INDEX_SLOTS: usize = 1024;
/// Slots of the blend cache.
const BLEND_SLOTS: usize = 4096;
/// An empty blend slot (keys use 40 bits).
const EMPTY: u64 = u64::MAX;

fn rgb_key(rgb: [u8; 3]) -> u32 {
    u32::from(rgb[0]) << 16 | u32::from(rgb[1]) << 8 | u32::from(rgb[2])
}

/// Fibonacci hashing: the top bits of key·φ·2⁶⁴.
fn slot(key: u64, slots: usize) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - slots.trailing_zeros())) as usize
}

/// `v` (≥ 0) rounded to the nearest integer, without a libm call.
fn round_u8(v: f64) -> u8 {
    (v + 0.5) as u8
}

/// Never returned: drawing into memory cannot fail.
#[derive(Debug, thiserror::Error)]
#[error("canvas error")]
pub(crate) struct CanvasError;

type Result<T = ()> = std::result::Result<T, DrawingErrorKind<CanvasError>>;

/// A `width × height` image of palette indices with its palette (≤ 256 colours).
pub(crate) struct Canvas {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
    palette: Vec<[u8; 3]>,
    /// Colour → index, open addressing (a chart draws hundreds of thousands of edge
    /// pixels; std's SipHash map cost a third of the render).
    index: Box<[(u32, u8); INDEX_SLOTS]>,
    /// (colour below, colour drawn, alpha) → the blend's index, a direct-mapped cache.
    blends: Box<[(u64, u8); BLEND_SLOTS]>,
    /// The last solid colour drawn and its index (runs of one colour are the rule).
    last: Option<([u8; 3], u8)>,
    /// Palette entries kept even while no pixel has them (background and theme).
    reserved: usize,
    /// Colours drawn as the nearest palette entry because 256 were on the canvas.
    pub(crate) snapped: usize,
    /// Whether the last [`Canvas::compact`] freed too little to try again.
    compacted_in_vain: bool,
}

impl Canvas {
    /// A canvas of `background`, with room kept in the palette for `solid` colours
    /// (the theme's: so that blends can never crowd out a line's own colour).
    pub(crate) fn new(width: u32, height: u32, background: [u8; 3], solid: &[[u8; 3]]) -> Self {
        let mut canvas = Self {
            width,
            height,
            pixels: vec![0; width as usize * height as usize],
            palette: Vec::with_capacity(256),
            index: Box::new([(u32::MAX, 0); INDEX_SLOTS]),
            blends: Box::new([(EMPTY, 0); BLEND_SLOTS]),
            last: None,
            reserved: 0,
            snapped: 0,
            compacted_in_vain: false,
        };
        canvas.index_of(background);
        for &c in solid.iter().take(255) {
            canvas.index_of(c);
        }
        canvas.reserved = canvas.palette.len();
        canvas.last = Some((background, 0));
        canvas
    }

    /// Drops the palette entries no pixel has any more (blends drawn over since) and
    /// renumbers the pixels. Edges drawn over edges leave many such colours behind.
    fn compact(&mut self) {
        let mut used = [false; 256];
        used[..self.reserved].fill(true);
        for &p in &self.pixels {
            used[usize::from(p)] = true;
        }
        let mut renumber = [0u8; 256];
        let old = std::mem::take(&mut self.palette);
        self.index.fill((u32::MAX, 0));
        self.blends.fill((EMPTY, 0));
        self.last = None;
        for (i, rgb) in old.into_iter().enumerate().filter(|&(i, _)| used[i]) {
            renumber[i] = self.index_of(rgb);
        }
        for p in &mut self.pixels {
            *p = renumber[usize::from(*p)];
        }
    }

    /// Palette indices, row by row.
    pub(crate) fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    pub(crate) fn palette(&self) -> &[[u8; 3]] {
        &self.palette
    }

    /// The image as RGB, three bytes a pixel.
    pub(crate) fn to_rgb(&self) -> Vec<u8> {
        self.pixels
            .iter()
            .flat_map(|&i| self.palette[usize::from(i)])
            .collect()
    }

    /// The index of `rgb`: added to the palette while there is room, else the nearest
    /// colour already there.
    fn index_of(&mut self, rgb: [u8; 3]) -> u8 {
        if let Some((c, i)) = self.last
            && c == rgb
        {
            return i;
        }
        let key = rgb_key(rgb);
        let mut at = slot(u64::from(key), INDEX_SLOTS);
        while self.index[at].0 != key && self.index[at].0 != u32::MAX {
            at = (at + 1) % INDEX_SLOTS;
        }
        if self.index[at].0 != key && self.palette.len() == 256 && !self.compacted_in_vain {
            self.compact();
            // A pass over every pixel is worth it only if it frees a good many entries.
            self.compacted_in_vain = self.palette.len() > 256 - 16;
            if self.palette.len() < 256 {
                return self.index_of(rgb);
            }
        }
        let i = match self.index[at] {
            (k, i) if k == key => i,
            _ if self.palette.len() < 256 => {
                let i = self.palette.len() as u8;
                self.palette.push(rgb);
                self.index[at] = (key, i);
                i
            }
            _ => {
                let distance = |c: &[u8; 3]| -> i32 {
                    (0..3)
                        .map(|k| (i32::from(c[k]) - i32::from(rgb[k])).pow(2))
                        .sum()
                };
                let nearest = (0..self.palette.len())
                    .min_by_key(|&k| distance(&self.palette[k]))
                    .unwrap_or(0);
                self.snapped += 1;
                nearest as u8
            }
        };
        self.last = Some((rgb, i));
        i
    }

    /// The index of `rgb` at `alpha` (in 1/255) over the colour of index `below`.
    fn blend(&mut self, below: u8, rgb: [u8; 3], alpha: u8) -> u8 {
        let key = u64::from(below) | u64::from(rgb_key(rgb)) << 8 | u64::from(alpha) << 32;
        let at = slot(key, BLEND_SLOTS);
        if self.blends[at].0 == key {
            return self.blends[at].1;
        }
        let under = self.palette[usize::from(below)];
        let a = f64::from(alpha) / 255.0;
        let mixed: [u8; 3] = std::array::from_fn(|k| {
            round_u8(f64::from(rgb[k]) * a + f64::from(under[k]) * (1.0 - a))
        });
        let i = self.index_of(mixed);
        self.blends[at] = (key, i);
        i
    }

    /// Paints the pixels `x0..x1` of row `y` (already clipped) in `color`.
    fn span(&mut self, y: usize, x0: usize, x1: usize, color: BackendColor) {
        if x0 >= x1 {
            return;
        }
        let row = y * self.width as usize;
        if color.alpha >= 1.0 {
            let i = self.index_of(color.rgb.into());
            self.pixels[row + x0..row + x1].fill(i);
            return;
        }
        let alpha = round_u8(color.alpha.clamp(0.0, 1.0) * 255.0);
        if alpha == 0 {
            return;
        }
        let rgb: [u8; 3] = color.rgb.into();
        // Runs of one colour below give runs of one blend: one lookup per run.
        let mut memo: Option<(u8, u8)> = None;
        for k in row + x0..row + x1 {
            let below = self.pixels[k];
            let i = match memo {
                Some((b, i)) if b == below => i,
                _ => {
                    let i = self.blend(below, rgb, alpha);
                    memo = Some((below, i));
                    i
                }
            };
            self.pixels[k] = i;
        }
    }

    /// The rectangle's rows and columns inside the canvas (inclusive corners).
    fn clip(&self, a: BackendCoord, b: BackendCoord) -> Option<(usize, usize, usize, usize)> {
        let (x0, x1) = (a.0.min(b.0).max(0), a.0.max(b.0).min(self.width as i32 - 1));
        let (y0, y1) = (
            a.1.min(b.1).max(0),
            a.1.max(b.1).min(self.height as i32 - 1),
        );
        (x0 <= x1 && y0 <= y1).then(|| (x0 as usize, x1 as usize + 1, y0 as usize, y1 as usize + 1))
    }
}

/// Plotters' handle on a [`Canvas`] (a drawing area owns its backend; this borrows).
pub(crate) struct Painter<'c>(pub &'c mut Canvas);

impl DrawingBackend for Painter<'_> {
    type ErrorType = CanvasError;

    fn get_size(&self) -> (u32, u32) {
        (self.0.width, self.0.height)
    }

    fn ensure_prepared(&mut self) -> Result {
        Ok(())
    }

    fn present(&mut self) -> Result {
        Ok(())
    }

    /// Every blended pixel of text and of sloped lines comes through here (plotters'
    /// default `draw_text` and line rasterizer draw them pixel by pixel): its coverage
    /// is rounded to [`LEVELS`] steps.
    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Result {
        let (x, y) = point;
        if x < 0 || y < 0 || x >= self.0.width as i32 || y >= self.0.height as i32 {
            return Ok(());
        }
        let alpha = f64::from(round_u8(color.alpha.clamp(0.0, 1.0) * LEVELS)) / LEVELS;
        self.0.span(
            y as usize,
            x as usize,
            x as usize + 1,
            BackendColor { alpha, ..color },
        );
        Ok(())
    }

    /// Axis-aligned hairlines are spans; every other line goes through plotters'
    /// rasterizer and so through [`Self::draw_pixel`] and [`Self::fill_polygon`].
    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result {
        if (from.0 == to.0 || from.1 == to.1) && style.stroke_width() == 1 {
            if let Some((x0, x1, y0, y1)) = self.0.clip(from, to) {
                for y in y0..y1 {
                    self.0.span(y, x0, x1, style.color());
                }
            }
            return Ok(());
        }
        plotters_backend::rasterizer::draw_line(self, from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result {
        if !fill {
            return plotters_backend::rasterizer::draw_rect(
                self,
                upper_left,
                bottom_right,
                style,
                fill,
            );
        }
        if let Some((x0, x1, y0, y1)) = self.0.clip(upper_left, bottom_right) {
            for y in y0..y1 {
                self.0.span(y, x0, x1, style.color());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHITE: [u8; 3] = [255, 255, 255];

    fn solid(rgb: (u8, u8, u8)) -> BackendColor {
        BackendColor { alpha: 1.0, rgb }
    }

    #[test]
    fn blends_are_computed_once_per_pair_and_alpha() {
        let mut c = Canvas::new(4, 1, WHITE, &[]);
        let half = BackendColor {
            alpha: 0.5,
            rgb: (0, 0, 0),
        };

        Painter(&mut c).draw_pixel((0, 0), half).unwrap();
        Painter(&mut c).draw_pixel((1, 0), half).unwrap();

        // Alpha is kept in 1/255: 0.5 is 128/255, and 255·(1 − 128/255) = 127.
        assert_eq!(c.palette(), &[WHITE, [127, 127, 127]]);
        assert_eq!(c.pixels(), &[1, 1, 0, 0]);
    }

    #[test]
    fn edge_coverage_is_rounded_to_halves() {
        let mut c = Canvas::new(3, 1, WHITE, &[]);

        let mut p = Painter(&mut c);
        p.draw_pixel(
            (0, 0),
            BackendColor {
                alpha: 0.3,
                rgb: (0, 0, 0),
            },
        )
        .unwrap();
        p.draw_pixel(
            (1, 0),
            BackendColor {
                alpha: 0.1,
                rgb: (0, 0, 0),
            },
        )
        .unwrap();

        // 0.3 → 0.5 (alpha 128/255: 255·127/255 = 127); 0.1 → nothing drawn.
        assert_eq!(
            c.to_rgb(),
            vec![127, 127, 127, 255, 255, 255, 255, 255, 255]
        );
    }

    #[test]
    fn a_257th_colour_takes_the_nearest_one_on_the_canvas() {
        let mut c = Canvas::new(300, 1, WHITE, &[]);
        for x in 0..255 {
            Painter(&mut c)
                .draw_pixel((x, 0), solid((x as u8, 0, 0)))
                .unwrap();
        }
        assert_eq!(c.palette().len(), 256);

        Painter(&mut c)
            .draw_pixel((299, 0), solid((10, 0, 1)))
            .unwrap();

        assert_eq!(c.palette().len(), 256);
        assert_eq!(c.to_rgb()[299 * 3..], [10, 0, 0]);
    }

    #[test]
    fn colours_drawn_over_leave_the_palette_when_it_fills() {
        let mut c = Canvas::new(2, 1, WHITE, &[]);
        for v in 0..300u32 {
            let grey = (v % 250) as u8;
            Painter(&mut c)
                .draw_pixel((0, 0), solid((grey, grey, 1)))
                .unwrap();
        }

        Painter(&mut c)
            .draw_pixel((1, 0), solid((7, 8, 9)))
            .unwrap();

        assert_eq!(c.to_rgb(), [49, 49, 1, 7, 8, 9]);
        assert!(c.palette().len() < 256);
    }

    #[test]
    fn solid_colours_keep_their_place_when_blends_fill_the_palette() {
        let red = [200, 0, 0];
        let mut c = Canvas::new(300, 1, WHITE, &[red]);
        for x in 0..280 {
            let grey = BackendColor {
                alpha: 1.0 - f64::from(x) / 300.0,
                rgb: (0, 0, 0),
            };
            Painter(&mut c)
                .draw_rect((x, 0), (x, 0), &grey, true)
                .unwrap();
        }

        Painter(&mut c)
            .draw_pixel((299, 0), solid((200, 0, 0)))
            .unwrap();

        assert_eq!(c.to_rgb()[299 * 3..], red);
    }

    #[test]
    fn rectangles_and_lines_are_clipped_to_the_canvas() {
        let mut c = Canvas::new(4, 3, WHITE, &[]);

        let mut p = Painter(&mut c);
        p.draw_rect((-5, 1), (1, 9), &solid((1, 2, 3)), true)
            .unwrap();
        p.draw_line((3, -1), (3, 7), &solid((9, 9, 9))).unwrap();

        assert_eq!(c.pixels(), &[0, 0, 0, 2, 1, 1, 0, 2, 1, 1, 0, 2]);
    }
}
