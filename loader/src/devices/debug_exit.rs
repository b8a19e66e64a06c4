//! The debug-exit device (like QEMU's `isa-debug-exit,iobase=0xf4,iosize=0x04`): a write to
//! ports 0xf4..=0xf7 ends the VM with the written value as the guest's status.
//!
//! The contract: the guest writes its status `s` with a 32-bit `out` to 0xf4, and
//! `afterburn-run` exits with code `s` for 0 <= s <= 99; a larger `s` is printed and reported
//! as 99. Narrower writes are zero-extended; for string I/O (`rep outs`) the first four bytes
//! count. Reads are not handled (they read as all-ones, like any unhandled port).

/// First port of the device.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
/// Number of ports the device decodes (0xf4..=0xf7).
pub const DEBUG_EXIT_PORTS: u16 = 4;
/// Highest status that becomes the exit code unchanged.
pub const MAX_STATUS_CODE: u32 = 99;

/// Whether `port` belongs to the device.
pub fn is_debug_exit_port(port: u16) -> bool {
    (DEBUG_EXIT_PORT..DEBUG_EXIT_PORT + DEBUG_EXIT_PORTS).contains(&port)
}

/// The status a write of `data` reports: up to four bytes, little-endian, zero-extended.
pub fn status_from_write(data: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    for (d, s) in b.iter_mut().zip(data) {
        *d = *s;
    }
    u32::from_le_bytes(b)
}

/// The process exit code for a guest status: the status itself up to 99, else 99.
pub fn exit_code_for_status(status: u32) -> u8 {
    u8::try_from(status.min(MAX_STATUS_CODE)).unwrap_or(99)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert!(!is_debug_exit_port(0xf3));
        assert!(is_debug_exit_port(0xf4));
        assert!(is_debug_exit_port(0xf7));
        assert!(!is_debug_exit_port(0xf8));
    }

    #[test]
    fn statuses() {
        assert_eq!(status_from_write(&7u32.to_le_bytes()), 7);
        assert_eq!(status_from_write(&[0x34, 0x12]), 0x1234);
        assert_eq!(status_from_write(&[5]), 5);
        assert_eq!(status_from_write(&[]), 0);
        assert_eq!(status_from_write(&[1, 0, 0, 0, 9, 9, 9, 9]), 1);
        assert_eq!(status_from_write(&u32::MAX.to_le_bytes()), u32::MAX);
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code_for_status(0), 0);
        assert_eq!(exit_code_for_status(7), 7);
        assert_eq!(exit_code_for_status(99), 99);
        assert_eq!(exit_code_for_status(100), 99);
        assert_eq!(exit_code_for_status(u32::MAX), 99);
    }
}
