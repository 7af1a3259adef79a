//! Parallel CPU kernels (rayon): every kernel for f32, f16 and bf16, generic over [`Element`], accumulating in f32
//! and rounding once to the storage type. Each validates its shape and buffer lengths first and returns a typed
//! [`joule_core::Error`] instead of panicking.
//!
//! Outputs are written completely; inputs are never modified; results do not depend on the number of threads.

mod attention;
mod convert;
mod dwconv;
mod gemm;

pub use attention::attention;
pub use dwconv::{depthwise, dwsep_fused, pointwise};
pub use gemm::{GemmStrategy, gemm, gemm_with};

use joule_core::{AttnMask, AttnShape, DwConvShape, Element, GemmShape, Kernels, Result};

/// The CPU backend: [`Kernels`] implemented by this module's functions. Uses rayon's global thread pool.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuKernels;

impl Kernels for CpuKernels {
    fn name(&self) -> String {
        "cpu".to_string()
    }

    fn gemm<T: Element>(&self, shape: &GemmShape, a: &[T], b: &[T], c: &mut [T]) -> Result<()> {
        gemm(shape, a, b, c)
    }

    fn depthwise<T: Element>(&self, shape: &DwConvShape, input: &[T], weight: &[T], out: &mut [T]) -> Result<()> {
        depthwise(shape, input, weight, out)
    }

    fn pointwise<T: Element>(&self, shape: &DwConvShape, dw_out: &[T], weight: &[T], out: &mut [T]) -> Result<()> {
        pointwise(shape, dw_out, weight, out)
    }

    fn dwsep_fused<T: Element>(
        &self,
        shape: &DwConvShape,
        input: &[T],
        dw_weight: &[T],
        pw_weight: &[T],
        out: &mut [T],
    ) -> Result<()> {
        dwsep_fused(shape, input, dw_weight, pw_weight, out)
    }

    fn attention<T: Element>(
        &self,
        shape: &AttnShape,
        q: &[T],
        k: &[T],
        v: &[T],
        mask: Option<AttnMask<'_>>,
        out: &mut [T],
    ) -> Result<()> {
        attention(shape, q, k, v, mask, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use joule_core::InputGen;

    #[test]
    fn results_do_not_depend_on_the_number_of_threads() {
        let s = AttnShape::new(1, 2, 50, 70, 40).with_causal(true);
        let mut g = InputGen::new(1);
        let (q, k, v): (Vec<f32>, Vec<f32>, Vec<f32>) = (g.vec(s.q_len()), g.vec(s.kv_len()), g.vec(s.kv_len()));
        // Above the gemm crate's threading threshold (48·48·256 multiply-adds), so its f32 path really splits.
        let gs = GemmShape::new(150, 200, 300);
        let (a, b): (Vec<f32>, Vec<f32>) = (g.vec(gs.a_len()), g.vec(gs.b_len()));
        let ds = DwConvShape::new(1, 9, 11, 8, 3, 1, 12);
        let (x, dw, pw): (Vec<f32>, Vec<f32>, Vec<f32>) =
            (g.vec(ds.input_len()), g.vec(ds.dw_weight_len()), g.vec(ds.pw_weight_len()));
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let mut out = vec![0.0f32; s.out_len()];
                attention(&s, &q, &k, &v, None, &mut out).unwrap();
                let mut c = vec![0.0f32; gs.c_len()];
                gemm(&gs, &a, &b, &mut c).unwrap();
                let (ah, bh): (Vec<half::f16>, Vec<half::f16>) = (
                    a.iter().map(|&x| half::f16::from_f32(x)).collect(),
                    b.iter().map(|&x| half::f16::from_f32(x)).collect(),
                );
                let mut ch = vec![half::f16::ZERO; gs.c_len()];
                gemm(&gs, &ah, &bh, &mut ch).unwrap();
                c.extend(ch.iter().map(|x| x.to_f32()));
                let mut y = vec![0.0f32; ds.out_len()];
                dwsep_fused(&ds, &x, &dw, &pw, &mut y).unwrap();
                [out, c, y].map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
            })
        };
        assert_eq!(run(1), run(3));
    }
}
