//! Drawing detections onto an RGB8 image with `embedded-graphics`: a box per
//! detection and a filled label with the class name and score. No allocation.

use core::convert::Infallible;
use core::fmt::Write as _;

use edgedetr::Detection;
use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::mono_font::ascii::FONT_6X10;
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Baseline, Text};

/// An interleaved RGB8 image as an `embedded-graphics` draw target; pixels
/// outside the image are dropped.
pub struct RgbCanvas<'a> {
    pixels: &'a mut [u8],
    width: u32,
    height: u32,
}

impl<'a> RgbCanvas<'a> {
    /// Wraps `pixels` (`width × height × 3` bytes); `None` when the length
    /// does not match.
    pub fn new(pixels: &'a mut [u8], width: u32, height: u32) -> Option<Self> {
        let len = (width as usize)
            .checked_mul(height as usize)
            .and_then(|n| n.checked_mul(3));
        (len == Some(pixels.len())).then_some(RgbCanvas {
            pixels,
            width,
            height,
        })
    }
}

impl OriginDimensions for RgbCanvas<'_> {
    fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }
}

impl DrawTarget for RgbCanvas<'_> {
    type Color = Rgb888;
    type Error = Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Infallible>
    where
        I: IntoIterator<Item = Pixel<Rgb888>>,
    {
        for Pixel(p, c) in pixels {
            if p.x >= 0 && p.y >= 0 && (p.x as u32) < self.width && (p.y as u32) < self.height {
                let i = (p.y as usize * self.width as usize + p.x as usize) * 3;
                self.pixels[i] = c.r();
                self.pixels[i + 1] = c.g();
                self.pixels[i + 2] = c.b();
            }
        }
        Ok(())
    }
}

/// A distinct colour per class (ultralytics-like palette).
fn colour(class: u32) -> Rgb888 {
    const PALETTE: [(u8, u8, u8); 10] = [
        (255, 56, 56),
        (255, 157, 151),
        (255, 112, 31),
        (255, 178, 29),
        (207, 210, 49),
        (72, 249, 10),
        (26, 147, 52),
        (0, 212, 187),
        (52, 69, 147),
        (132, 56, 255),
    ];
    let (r, g, b) = PALETTE[class as usize % PALETTE.len()];
    Rgb888::new(r, g, b)
}

/// Draws every detection; `name(class)` gives the label text (names longer
/// than 48 bytes are cut).
pub fn draw_detections<'n>(
    canvas: &mut RgbCanvas<'_>,
    dets: &[Detection],
    name: impl Fn(u32) -> &'n str,
) {
    let thickness = (canvas.width.max(canvas.height) / 400).clamp(1, 4);
    for d in dets {
        let c = colour(d.class_id);
        let round = libm::roundf;
        let (x1, y1) = (round(d.x1) as i32, round(d.y1) as i32);
        let (w, h) = (
            round(d.x2 - d.x1).max(1.0) as u32,
            round(d.y2 - d.y1).max(1.0) as u32,
        );
        let _ = Rectangle::new(Point::new(x1, y1), Size::new(w, h))
            .into_styled(PrimitiveStyle::with_stroke(c, thickness))
            .draw(canvas);
        let mut label = heapless::String::<64>::new();
        for ch in name(d.class_id).chars() {
            if label.len() + ch.len_utf8() > 48 {
                break;
            }
            let _ = label.push(ch);
        }
        // Fits: the name takes at most 48 of the 64 bytes.
        let _ = write!(label, " {:.2}", d.score);
        let lw = label.chars().count() as u32 * 6 + 4;
        let ly = (y1 - 12).max(0);
        let _ = Rectangle::new(Point::new(x1, ly), Size::new(lw, 12))
            .into_styled(PrimitiveStyle::with_fill(c))
            .draw(canvas);
        let _ = Text::with_baseline(
            &label,
            Point::new(x1 + 2, ly + 1),
            MonoTextStyle::new(&FONT_6X10, Rgb888::WHITE),
            Baseline::Top,
        )
        .draw(canvas);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_land_on_the_pixels_and_clip_at_the_border() {
        let (w, h) = (64u32, 48u32);
        let mut px = vec![0u8; (w * h * 3) as usize];
        let mut canvas = RgbCanvas::new(&mut px, w, h).unwrap();
        let d = Detection {
            x1: 20.0,
            y1: 20.0,
            x2: 40.0,
            y2: 30.0,
            score: 0.5,
            class_id: 0,
        };
        let off = Detection {
            x1: -10.0,
            y1: -10.0,
            x2: 100.0,
            y2: 100.0,
            ..d
        };
        draw_detections(&mut canvas, &[d, off], |_| "person");
        // Bottom-left corner of the first box is drawn in class 0's colour.
        let i = ((29 * w + 20) * 3) as usize;
        assert_eq!(&px[i..i + 3], &[255, 56, 56]);
        // Interior stays untouched.
        let j = ((26 * w + 30) * 3) as usize;
        assert_eq!(&px[j..j + 3], &[0, 0, 0]);
        assert!(RgbCanvas::new(&mut [0u8; 5], 2, 2).is_none());
        // A very long class name is cut, not a panic.
        let long = "x".repeat(500);
        let mut canvas = RgbCanvas::new(&mut px, w, h).unwrap();
        draw_detections(&mut canvas, &[d], |_| &long);
    }
}
