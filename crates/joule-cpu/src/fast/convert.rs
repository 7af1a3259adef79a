//! Bulk conversions between a storage type and f32.
//!
//! `Element::to_f32`/`from_f32` convert one value at a time; for f16 that is a software conversion or a run-time
//! feature check per element. These helpers convert whole slices with `half`'s slice conversions, which use the
//! F16C instructions when the CPU has them (detected at run time). The rounding is the same (round to nearest even,
//! NaN stays NaN, overflow gives ±Inf), so results do not change, only the speed.

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use joule_core::{DType, Element};

/// `dst[i] = src[i].to_f32()`; the slices have the same length.
#[inline]
pub(crate) fn widen_into<T: Element>(src: &[T], dst: &mut [f32]) {
    debug_assert_eq!(src.len(), dst.len());
    match T::DTYPE {
        // T is f32 / f16 / bf16 exactly when DTYPE says so, so each cast is an identity reinterpretation.
        DType::F32 => dst.copy_from_slice(bytemuck::cast_slice::<T, f32>(src)),
        DType::F16 => bytemuck::cast_slice::<T, f16>(src).convert_to_f32_slice(dst),
        DType::BF16 => bytemuck::cast_slice::<T, bf16>(src).convert_to_f32_slice(dst),
    }
}

/// `dst[i] = T::from_f32(src[i])`; the slices have the same length.
#[inline]
pub(crate) fn narrow_into<T: Element>(src: &[f32], dst: &mut [T]) {
    debug_assert_eq!(src.len(), dst.len());
    match T::DTYPE {
        DType::F32 => bytemuck::cast_slice_mut::<T, f32>(dst).copy_from_slice(src),
        DType::F16 => bytemuck::cast_slice_mut::<T, f16>(dst).convert_from_f32_slice(src),
        DType::BF16 => bytemuck::cast_slice_mut::<T, bf16>(dst).convert_from_f32_slice(src),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_conversions_round_exactly_like_element() {
        let xs: Vec<f32> = (0..1000)
            .map(|i| ((i as f32) * 0.37).sin() * 70000.0 / (1.0 + i as f32))
            .chain([
                f32::NAN,
                f32::INFINITY,
                -1e6,
                1.0 + 2f32.powi(-11),
                1.0 + 3.0 * 2f32.powi(-11),
                1.0 + 2f32.powi(-8),
            ])
            .collect();
        fn check<T: Element>(xs: &[f32]) {
            let mut bulk = vec![T::default(); xs.len()];
            narrow_into(xs, &mut bulk);
            let one: Vec<T> = xs.iter().map(|&x| T::from_f32(x)).collect();
            assert_eq!(bytemuck::cast_slice::<T, u8>(&bulk), bytemuck::cast_slice::<T, u8>(&one), "{}", T::DTYPE);
            let mut back = vec![0.0f32; xs.len()];
            widen_into(&bulk, &mut back);
            let one_back: Vec<u32> = one.iter().map(|x| x.to_f32().to_bits()).collect();
            assert_eq!(back.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), one_back, "{}", T::DTYPE);
        }
        check::<f32>(&xs);
        check::<f16>(&xs);
        check::<bf16>(&xs);
    }
}
