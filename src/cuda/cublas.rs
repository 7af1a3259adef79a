//! The cuBLAS GEMM baseline: `cublasGemmEx` with f32 accumulation, on the same device buffers as Joule's kernels.
//!
//! Row-major `C = alpha·A·B + beta·C` is computed as the column-major product `Cᵀ = Bᵀ·Aᵀ` (a row-major matrix
//! with leading dimension ld is its transpose in column-major with the same ld), so no data is transposed.
//! Precision: f16 and bf16 storage with `CUBLAS_COMPUTE_32F` (f32 accumulation, tensor cores allowed); f32 with
//! `CUBLAS_COMPUTE_32F` and the default math mode, i.e. true f32 (backend `cublas`), or with
//! `CUBLAS_COMPUTE_32F_FAST_TF32` (backend `cublas-tf32`: 10-bit mantissa inputs; never an f32 reference).

use super::runtime::{CudaRuntime, DeviceBuffer};
use crate::{AttnMask, AttnShape, DType, DwConvShape, Element, Error, GemmShape, Kernels, Result};
use cudarc::cublas::sys::{cublasComputeType_t, cublasMath_t, cublasOperation_t, cudaDataType_t};
use std::sync::Arc;

fn blas_err(context: impl Into<String>) -> impl FnOnce(cudarc::cublas::result::CublasError) -> Error {
    let context = context.into();
    move |e| Error::Cuda { context, message: format!("{e:?}") }
}

impl CudaRuntime {
    /// The cuBLAS GEMM baseline on device buffers; `tf32` selects TF32 tensor-core math for f32 (ignored for
    /// f16/bf16). Queued on the runtime's stream, not waited for.
    pub fn cublas_gemm<T: Element>(
        &self,
        shape: &GemmShape,
        a: &DeviceBuffer<T>,
        b: &DeviceBuffer<T>,
        c: &mut DeviceBuffer<T>,
        tf32: bool,
    ) -> Result<()> {
        shape.check_buffers(a.len(), b.len(), c.len())?;
        if shape.m == 0 || shape.n == 0 {
            return Ok(());
        }
        let dim = |v: usize, what: &str| joule_launch::dim(v, what);
        let (m, n, k) = (dim(shape.m, "m")?, dim(shape.n, "n")?, dim(shape.k, "k")?);
        // cuBLAS wants ld ≥ max(1, rows); with k = 0 nothing is read, so any valid ld will do.
        let (lda, ldb, ldc) =
            (dim(shape.lda.max(1), "lda")?, dim(shape.ldb.max(1), "ldb")?, dim(shape.ldc.max(1), "ldc")?);
        let (data_type, compute) = match (T::DTYPE, tf32) {
            (DType::F32, false) => (cudaDataType_t::CUDA_R_32F, cublasComputeType_t::CUBLAS_COMPUTE_32F),
            (DType::F32, true) => (cudaDataType_t::CUDA_R_32F, cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32),
            (DType::F16, _) => (cudaDataType_t::CUDA_R_16F, cublasComputeType_t::CUBLAS_COMPUTE_32F),
            (DType::BF16, _) => (cudaDataType_t::CUDA_R_16BF, cublasComputeType_t::CUBLAS_COMPUTE_32F),
        };
        let (alpha, beta) = (shape.alpha, shape.beta);
        // cuBLAS calls run in the calling thread's current context.
        self.ctx
            .bind_to_thread()
            .map_err(|e| Error::Cuda { context: "bind context".into(), message: e.to_string() })?;
        let (pa, pb, pc) = (self.ptr(a), self.ptr(b), self.ptr_mut(c));
        let mut blas = self.blas.lock().map_err(|_| Error::Cuda {
            context: "cuBLAS".into(),
            message: "a thread panicked while holding the cuBLAS handle".into(),
        })?;
        if blas.is_none() {
            // SAFETY: only tries to dlopen the candidate library names.
            if !unsafe { cudarc::cublas::sys::is_culib_present() } {
                return Err(Error::CudaUnavailable(
                    "libcublas not found (add the CUDA toolkit's or the \
                     nvidia-cublas wheel's lib folder to LD_LIBRARY_PATH)"
                        .into(),
                ));
            }
            let handle = cudarc::cublas::CudaBlas::new(self.stream.clone()).map_err(blas_err("cublasCreate"))?;
            // SAFETY: a valid handle; the default math mode keeps CUBLAS_COMPUTE_32F in true f32.
            unsafe { cudarc::cublas::sys::cublasSetMathMode(*handle.handle(), cublasMath_t::CUBLAS_DEFAULT_MATH) }
                .result()
                .map_err(blas_err("cublasSetMathMode"))?;
            *blas = Some(handle);
        }
        let handle = *blas.as_ref().map(|b| b.handle()).ok_or_else(|| Error::CudaUnavailable("no cuBLAS".into()))?;
        // SAFETY: the buffers hold at least the elements the shape addresses (checked above), alpha/beta are host
        // f32 as CUBLAS_COMPUTE_32F requires, and the handle runs on this runtime's stream.
        unsafe {
            cudarc::cublas::result::gemm_ex(
                handle,
                cublasOperation_t::CUBLAS_OP_N,
                cublasOperation_t::CUBLAS_OP_N,
                n,
                m,
                k,
                &alpha as *const f32 as *const _,
                pb as *const _,
                data_type,
                ldb,
                pa as *const _,
                data_type,
                lda,
                &beta as *const f32 as *const _,
                pc as *mut _,
                data_type,
                ldc,
                compute,
                cudarc::cublas::sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(blas_err(format!("cublasGemmEx {}×{}×{} {}", shape.m, shape.n, shape.k, T::DTYPE)))
    }
}

/// The cuBLAS GEMM baseline as a backend (`cublas`, or `cublas-tf32` for TF32 math on f32 inputs). GEMM only:
/// the other operations return [`Error::Unsupported`].
#[derive(Debug, Clone)]
pub struct CublasGemm {
    rt: Arc<CudaRuntime>,
    tf32: bool,
}

impl CublasGemm {
    /// True f32 for f32 inputs (backend name `cublas`), on the shared runtime.
    pub fn new() -> Result<Self> {
        Ok(CublasGemm { rt: CudaRuntime::shared()?, tf32: false })
    }
    /// TF32 tensor-core math for f32 inputs (backend name `cublas-tf32`), on the shared runtime.
    pub fn tf32() -> Result<Self> {
        Ok(CublasGemm { rt: CudaRuntime::shared()?, tf32: true })
    }
    /// The runtime.
    pub fn runtime(&self) -> &Arc<CudaRuntime> {
        &self.rt
    }
    fn unsupported(&self, op: &str) -> Error {
        Error::Unsupported(format!("backend `{}` implements GEMM only, not {op}", self.name()))
    }
}

impl Kernels for CublasGemm {
    fn name(&self) -> String {
        if self.tf32 { "cublas-tf32".into() } else { "cublas".into() }
    }

    fn gemm<T: Element>(&self, shape: &GemmShape, a: &[T], b: &[T], c: &mut [T]) -> Result<()> {
        shape.check_buffers(a.len(), b.len(), c.len())?;
        let rt = &self.rt;
        let (da, db) = (rt.upload(&a[..shape.a_len()])?, rt.upload(&b[..shape.b_len()])?);
        let c = &mut c[..shape.c_len()];
        let mut dc = rt.upload(c)?;
        rt.cublas_gemm(shape, &da, &db, &mut dc, self.tf32)?;
        rt.read(&dc, c)
    }

    fn depthwise<T: Element>(&self, _: &DwConvShape, _: &[T], _: &[T], _: &mut [T]) -> Result<()> {
        Err(self.unsupported("depthwise"))
    }
    fn pointwise<T: Element>(&self, _: &DwConvShape, _: &[T], _: &[T], _: &mut [T]) -> Result<()> {
        Err(self.unsupported("pointwise"))
    }
    fn dwsep_fused<T: Element>(&self, _: &DwConvShape, _: &[T], _: &[T], _: &[T], _: &mut [T]) -> Result<()> {
        Err(self.unsupported("dwsep_fused"))
    }
    fn attention<T: Element>(
        &self,
        _: &AttnShape,
        _: &[T],
        _: &[T],
        _: &[T],
        _: Option<AttnMask<'_>>,
        _: &mut [T],
    ) -> Result<()> {
        Err(self.unsupported("attention"))
    }
}
