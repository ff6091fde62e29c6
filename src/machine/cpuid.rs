//! CPUID of the weft board: a fixed, deterministic identity (ABI v1).
//!
//! Vendor GenuineIntel, max basic leaf 0xB, leaf 1 and 0xB carry the vCPU id, leaf 7
//! reports RTM and HLE. Features advertised are ones unicorn actually implements (SSE up to
//! SSE4.2, CX16, POPCNT; no AVX, no XSAVE), so feature-testing code picks paths that run.

/// EAX, EBX, ECX, EDX of CPUID(`leaf`, `sub`) on vCPU `id` of `count`.
pub fn leaf(leaf: u32, sub: u32, id: u32, count: u32) -> [u32; 4] {
    const MAX_BASIC: u32 = 0xB;
    const MAX_EXT: u32 = 0x8000_0001;
    match leaf {
        // "GenuineIntel" is EBX="Genu", EDX="ineI", ECX="ntel".
        0 => [MAX_BASIC, 0x756e_6547, 0x6c65_746e, 0x4965_6e69],
        1 => {
            // Family 6, model 0x6A (an Ice Lake server core), stepping 6: a model with
            // working TSX. (glibc turns RTM off on Kaby/Coffee Lake models, which have TSX
            // errata, so its lock elision would never run on weft's RTM.)
            let eax = 0x0006_06A6;
            let logical = count.min(255);
            let ebx = (id << 24) | (logical << 16) | (8 << 8);
            let ecx = (1 << 0) | (1 << 9) | (1 << 13) | (1 << 19) | (1 << 20) | (1 << 23);
            let edx = (1 << 0)
                | (1 << 4)
                | (1 << 8)
                | (1 << 15)
                | (1 << 19)
                | (1 << 23)
                | (1 << 24)
                | (1 << 25)
                | (1 << 26)
                | (1 << 28);
            [eax, ebx, ecx, edx]
        }
        7 if sub == 0 => [0, (1 << 4) | (1 << 11), 0, 0],
        0xB => match sub {
            // SMT level: one thread per core.
            0 => [0, 1, 0x100, id],
            // Core level: every vCPU is a core of one package.
            1 => [count.next_power_of_two().trailing_zeros(), count, 0x201, id],
            _ => [0, 0, sub, id],
        },
        0x8000_0000 => [MAX_EXT, 0, 0, 0],
        // LAHF/SAHF in 64-bit mode; SYSCALL, NX, long mode.
        0x8000_0001 => [0, 0, 1, (1 << 11) | (1 << 20) | (1 << 29)],
        _ => [0, 0, 0, 0],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_matches_the_abi() {
        let [max, b, c, d] = leaf(0, 0, 0, 2);
        assert!(max >= 7);
        let mut vendor = Vec::new();
        for r in [b, d, c] {
            vendor.extend_from_slice(&r.to_le_bytes());
        }
        assert_eq!(&vendor, b"GenuineIntel");
        assert_eq!(leaf(1, 0, 5, 8)[1] >> 24, 5);
        let l7 = leaf(7, 0, 0, 1)[1];
        assert!(l7 & (1 << 11) != 0 && l7 & (1 << 4) != 0);
        assert_eq!(leaf(0xB, 0, 3, 4)[3], 3);
    }
}
