//! Devices the loader emulates in userspace, and the bus that routes port and MMIO exits.
//!
//! | ports / addresses | device |
//! |---|---|
//! | 0x3f8..=0x3ff | COM1 16550 UART (`serial`), IRQ 4 |
//! | 0xf4..=0xf7 | debug exit (`debug_exit`): a write ends the VM with a status |
//! | 0x70, 0x71 | CMOS RTC (`rtc`): host UTC time, 128 bytes of CMOS RAM |
//! | 0x80, 0xed | POST / I/O delay ports: writes ignored, reads all-ones |
//! | anything else | unhandled: reads all-ones, writes ignored; both counted |
//! | MMIO outside RAM | unhandled: reads all-ones, writes ignored; both counted |
//!
//! The PIC (0x20, 0xa0, 0x4d0), PIT (0x40..=0x43), speaker port (0x61), IOAPIC and local APIC
//! are KVM's in-kernel devices and never reach this bus.

pub mod debug_exit;
pub mod rtc;
pub mod serial;

use std::collections::BTreeMap;
use std::io::Write;

use debug_exit::{is_debug_exit_port, status_from_write};
use rtc::{Cmos, CMOS_DATA_PORT, CMOS_INDEX_PORT};
use serial::{is_com1_port, SerialConsole};

/// POST code port (also Linux's default I/O delay port).
pub const POST_PORT: u16 = 0x80;
/// Alternative I/O delay port (`io_delay=0xed`).
pub const ALT_DELAY_PORT: u16 = 0xed;

/// Most distinct unhandled ports tracked one by one (the totals count them all).
pub const MAX_TRACKED_PORTS: usize = 64;

/// Accesses to one unhandled port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCount {
    /// Reads.
    pub reads: u64,
    /// Writes.
    pub writes: u64,
}

/// What the run loop does after a guest access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusOutcome {
    /// Resume the guest.
    Continue,
    /// The guest wrote this status to the debug-exit port: end the VM.
    GuestExit(u32),
}

/// Counts of accesses nobody handles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnhandledCounts {
    /// Port reads (answered with all-ones).
    pub io_reads: u64,
    /// Port writes (dropped).
    pub io_writes: u64,
    /// MMIO reads (answered with all-ones).
    pub mmio_reads: u64,
    /// MMIO writes (dropped).
    pub mmio_writes: u64,
    /// Writes to the POST/delay ports (expected, not an error).
    pub delay_port_writes: u64,
}

/// The userspace devices of one VM.
pub struct Devices<W: Write> {
    /// COM1.
    pub serial: SerialConsole<W>,
    /// The CMOS RTC.
    pub cmos: Cmos,
    /// Accesses nobody handles.
    pub unhandled: UnhandledCounts,
    /// Unhandled accesses per port, for the first `MAX_TRACKED_PORTS` distinct ports.
    pub unhandled_ports: BTreeMap<u16, PortCount>,
}

impl<W: Write> Devices<W> {
    /// The devices, with COM1 writing to its console.
    pub fn new(serial: SerialConsole<W>) -> Self {
        Devices {
            serial,
            cmos: Cmos::default(),
            unhandled: UnhandledCounts::default(),
            unhandled_ports: BTreeMap::new(),
        }
    }

    fn track(&mut self, port: u16) -> Option<&mut PortCount> {
        if self.unhandled_ports.len() < MAX_TRACKED_PORTS
            || self.unhandled_ports.contains_key(&port)
        {
            Some(self.unhandled_ports.entry(port).or_default())
        } else {
            None
        }
    }

    /// A guest `in` from `port` filling `data`.
    pub fn pio_read(&mut self, port: u16, data: &mut [u8]) {
        if is_com1_port(port) {
            self.serial.read(port, data);
        } else if port == CMOS_INDEX_PORT || port == CMOS_DATA_PORT {
            for b in data {
                *b = self.cmos.read(port);
            }
        } else {
            data.fill(0xff);
            if port != POST_PORT && port != ALT_DELAY_PORT {
                self.unhandled.io_reads += 1;
                if let Some(c) = self.track(port) {
                    c.reads += 1;
                }
            }
        }
    }

    /// A guest `out` of `data` to `port`.
    pub fn pio_write(&mut self, port: u16, data: &[u8]) -> BusOutcome {
        if is_com1_port(port) {
            self.serial.write(port, data);
        } else if port == CMOS_INDEX_PORT || port == CMOS_DATA_PORT {
            for &b in data {
                self.cmos.write(port, b);
            }
        } else if is_debug_exit_port(port) {
            return BusOutcome::GuestExit(status_from_write(data));
        } else if port == POST_PORT || port == ALT_DELAY_PORT {
            self.unhandled.delay_port_writes += 1;
        } else {
            self.unhandled.io_writes += 1;
            if let Some(c) = self.track(port) {
                c.writes += 1;
            }
        }
        BusOutcome::Continue
    }

    /// A guest read from a guest-physical address outside RAM.
    pub fn mmio_read(&mut self, _addr: u64, data: &mut [u8]) {
        data.fill(0xff);
        self.unhandled.mmio_reads += 1;
    }

    /// A guest write to a guest-physical address outside RAM.
    pub fn mmio_write(&mut self, _addr: u64, _data: &[u8]) {
        self.unhandled.mmio_writes += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

    fn devices() -> Devices<Vec<u8>> {
        let evt = EventFd::new(EFD_NONBLOCK).unwrap();
        Devices::new(SerialConsole::new(evt, Vec::new()))
    }

    #[test]
    fn routing() {
        let mut d = devices();
        assert_eq!(d.pio_write(0x3f8, b"A"), BusOutcome::Continue);
        assert_eq!(d.serial.console().inner(), b"A");
        assert_eq!(
            d.pio_write(0xf4, &3u32.to_le_bytes()),
            BusOutcome::GuestExit(3)
        );
        assert_eq!(d.pio_write(0xf6, &[9]), BusOutcome::GuestExit(9));
        assert_eq!(d.pio_write(0x80, &[0x12]), BusOutcome::Continue);
        assert_eq!(d.unhandled.delay_port_writes, 1);
        assert_eq!(d.unhandled.io_writes, 0);
    }

    #[test]
    fn unhandled_ports_and_mmio() {
        let mut d = devices();
        let mut b = [0u8; 4];
        d.pio_read(0x1234, &mut b);
        assert_eq!(b, [0xff; 4]);
        d.pio_read(0xf4, &mut b[..1]);
        assert_eq!(d.pio_write(0xcf8, &[1, 2, 3, 4]), BusOutcome::Continue);
        assert_eq!(d.pio_write(0xffff, &[1]), BusOutcome::Continue);
        let mut m = [0u8; 8];
        d.mmio_read(0xd000_0000, &mut m);
        assert_eq!(m, [0xff; 8]);
        d.mmio_write(0xd000_0000, &[1, 2]);
        assert_eq!(
            d.unhandled,
            UnhandledCounts {
                io_reads: 2,
                io_writes: 2,
                mmio_reads: 1,
                mmio_writes: 1,
                delay_port_writes: 0
            }
        );
        assert!(d.serial.console().inner().is_empty());
        assert_eq!(
            d.unhandled_ports[&0x1234],
            PortCount {
                reads: 1,
                writes: 0
            }
        );
        assert_eq!(
            d.unhandled_ports[&0xcf8],
            PortCount {
                reads: 0,
                writes: 1
            }
        );
        assert_eq!(d.unhandled_ports.len(), 4);
    }

    #[test]
    fn tracked_ports_are_capped() {
        let mut d = devices();
        for port in 0x1000..0x1100u16 {
            d.pio_write(port, &[0]);
        }
        d.pio_write(0x1000, &[0]);
        assert_eq!(d.unhandled_ports.len(), MAX_TRACKED_PORTS);
        assert_eq!(d.unhandled_ports[&0x1000].writes, 2);
        assert_eq!(d.unhandled.io_writes, 0x101);
    }
}
