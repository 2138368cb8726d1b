//! Drawing detections onto an RGB8 image with `embedded-graphics`: a box per
//! detection and a filled label with the class name and score. No allocation.

use core::convert::Infallible;
use core::fmt::Write as _;

use edgedetr::Detection;
use embedded_graphics::mono_font::ascii::{FONT_6X10, FONT_9X15, FONT_10X20};
use embedded_graphics::mono_font::{MonoFont, MonoTextStyle};
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

/// The label font for an image: 6×10 up to 800 pixels on the longer side,
/// 9×15 up to 1600, 10×20 above (about 1/80 of the image either way).
fn font_for(width: u32, height: u32) -> &'static MonoFont<'static> {
    match width.max(height) {
        0..=800 => &FONT_6X10,
        801..=1600 => &FONT_9X15,
        _ => &FONT_10X20,
    }
}

/// Draws every detection; `name(class)` gives the label text (names longer
/// than 48 bytes are cut). Boxes are clamped to the image (a model may place
/// one partly outside), the line width and font grow with the image, and
/// each label stays wholly inside the image: above its box where there is
/// room, else just inside its top edge.
pub fn draw_detections<'n>(
    canvas: &mut RgbCanvas<'_>,
    dets: &[Detection],
    name: impl Fn(u32) -> &'n str,
) {
    let (iw, ih) = (canvas.width, canvas.height);
    if iw == 0 || ih == 0 {
        return;
    }
    let thickness = (iw.max(ih) / 400).clamp(1, 6);
    let font = font_for(iw, ih);
    let (cw, ch) = (font.character_size.width, font.character_size.height);
    // Corners rounded to pixels; the far corner is exclusive.
    let clamp = |v: f32, hi: u32| libm::roundf(v).clamp(0.0, hi as f32) as i32;
    for d in dets {
        let c = colour(d.class_id);
        let (x1, y1) = (clamp(d.x1.min(d.x2), iw - 1), clamp(d.y1.min(d.y2), ih - 1));
        let (x2, y2) = (clamp(d.x1.max(d.x2), iw), clamp(d.y1.max(d.y2), ih));
        let size = Size::new((x2 - x1).max(1) as u32, (y2 - y1).max(1) as u32);
        let _ = Rectangle::new(Point::new(x1, y1), size)
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
        let (lw, lh) = (label.chars().count() as u32 * cw + 4, ch + 2);
        let lx = x1.min(iw.saturating_sub(lw) as i32).max(0);
        let ly = if y1 >= lh as i32 {
            y1 - lh as i32
        } else {
            y1.min(ih.saturating_sub(lh) as i32)
        };
        let _ = Rectangle::new(Point::new(lx, ly), Size::new(lw, lh))
            .into_styled(PrimitiveStyle::with_fill(c))
            .draw(canvas);
        let _ = Text::with_baseline(
            &label,
            Point::new(lx + 2, ly + 1),
            MonoTextStyle::new(font, Rgb888::WHITE),
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
        // The box reaching outside is clamped: its outline runs along the
        // image's bottom corners (a label covers the top ones).
        for (x, y) in [(0, h - 1), (w - 1, h - 1), (w - 1, 20)] {
            let k = ((y * w + x) * 3) as usize;
            assert_eq!(&px[k..k + 3], &[255, 56, 56], "({x}, {y})");
        }
        // A label at the right edge is moved left to stay whole: its fill
        // reaches the last column above the box.
        let mut px = vec![0u8; (w * h * 3) as usize];
        let mut canvas = RgbCanvas::new(&mut px, w, h).unwrap();
        let edge = Detection {
            x1: 60.0,
            y1: 40.0,
            x2: 63.0,
            y2: 47.0,
            ..d
        };
        draw_detections(&mut canvas, &[edge], |_| "p");
        let k = ((28 * w + 63) * 3) as usize;
        assert_eq!(&px[k..k + 3], &[255, 56, 56]);
        // The font grows with the image.
        assert_eq!(font_for(640, 480).character_size.width, 6);
        assert_eq!(font_for(1920, 1080).character_size.width, 10);
        // A very long class name is cut, not a panic.
        let long = "x".repeat(500);
        let mut canvas = RgbCanvas::new(&mut px, w, h).unwrap();
        draw_detections(&mut canvas, &[d], |_| &long);
    }
}
