//! Which vector instructions this CPU has. The vector paths (`align`, `planar`) are checked
//! bit for bit against their scalar twins, so the answer changes speed, never results.

/// Whether AVX2 is available (std caches the CPUID answer, so this is cheap to call per row).
pub fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    false
}
