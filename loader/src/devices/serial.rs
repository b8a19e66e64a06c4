//! The COM1 console: vm-superio's 16550 UART at I/O 0x3f8..=0x3ff, raising IRQ 4 through an
//! eventfd registered as an irqfd with the in-kernel irqchip. Bytes the guest transmits go to
//! the output (stdout) unchanged, are counted, and the last lines are kept for diagnostics.

use std::collections::VecDeque;
use std::io::{self, Write};

use vm_superio::serial::NoEvents;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

/// First I/O port of COM1.
pub const COM1_PORT: u16 = 0x3f8;
/// Number of UART registers.
pub const COM1_PORTS: u16 = 8;
/// COM1's ISA interrupt line (GSI 4 on both the PIC and the IOAPIC).
pub const COM1_IRQ: u32 = 4;
/// Lines kept for the end-of-run report.
pub const TAIL_LINES: usize = 20;
/// Longest line kept (longer ones are cut, with a marker).
pub const TAIL_LINE_MAX: usize = 512;

/// Whether `port` is one of COM1's registers.
pub fn is_com1_port(port: u16) -> bool {
    (COM1_PORT..COM1_PORT + COM1_PORTS).contains(&port)
}

/// The UART's interrupt: a write to an eventfd that KVM turns into an edge on GSI 4.
#[derive(Debug)]
pub struct IrqTrigger(pub EventFd);

impl Trigger for IrqTrigger {
    type E = io::Error;
    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

/// The last lines of the guest's output.
#[derive(Debug, Default, Clone)]
pub struct LineTail {
    lines: VecDeque<Vec<u8>>,
    partial: Vec<u8>,
    partial_cut: bool,
}

impl LineTail {
    /// Adds bytes of output.
    pub fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                let line = std::mem::take(&mut self.partial);
                self.partial_cut = false;
                if self.lines.len() == TAIL_LINES {
                    self.lines.pop_front();
                }
                self.lines.push_back(line);
            } else if self.partial.len() < TAIL_LINE_MAX {
                self.partial.push(b);
            } else if !self.partial_cut {
                self.partial.extend_from_slice(b" [...]");
                self.partial_cut = true;
            }
        }
    }

    /// The kept lines, oldest first, with an unfinished last line if there is one (so at most
    /// `TAIL_LINES` + 1). Bytes that are not UTF-8 are shown as U+FFFD.
    pub fn lines(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .lines
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        if !self.partial.is_empty() {
            v.push(String::from_utf8_lossy(&self.partial).into_owned());
        }
        v
    }
}

/// Where the UART's output goes: the real output plus a byte count and the line tail.
#[derive(Debug)]
pub struct ConsoleWriter<W: Write> {
    out: W,
    /// Bytes the guest transmitted.
    pub bytes: u64,
    /// Bytes the output refused (e.g. a closed pipe); the guest never notices.
    pub lost: u64,
    /// The last lines.
    pub tail: LineTail,
}

impl<W: Write> ConsoleWriter<W> {
    /// Wraps `out`.
    pub fn new(out: W) -> Self {
        ConsoleWriter {
            out,
            bytes: 0,
            lost: 0,
            tail: LineTail::default(),
        }
    }

    /// The wrapped output.
    pub fn inner(&self) -> &W {
        &self.out
    }
}

impl<W: Write> Write for ConsoleWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes += buf.len() as u64;
        self.tail.push(buf);
        match self.out.write_all(buf) {
            Ok(()) => Ok(buf.len()),
            Err(e) => {
                self.lost += buf.len() as u64;
                Err(e)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// COM1.
pub struct SerialConsole<W: Write> {
    uart: Serial<IrqTrigger, NoEvents, ConsoleWriter<W>>,
}

impl<W: Write> SerialConsole<W> {
    /// A UART that raises `irq` and writes to `out`.
    pub fn new(irq: EventFd, out: W) -> Self {
        SerialConsole {
            uart: Serial::new(IrqTrigger(irq), ConsoleWriter::new(out)),
        }
    }

    /// A guest read of `data.len()` bytes from `port` (a COM1 port). The registers are 8 bits
    /// wide, so each byte is one read of that register (as `rep insb` does).
    pub fn read(&mut self, port: u16, data: &mut [u8]) {
        let offset = register(port);
        for b in data {
            *b = self.uart.read(offset);
        }
    }

    /// A guest write of `data` to `port` (a COM1 port), one register write per byte. Output
    /// errors never reach the guest.
    pub fn write(&mut self, port: u16, data: &[u8]) {
        let offset = register(port);
        for &b in data {
            // A failed host write or interrupt injection is counted in the writer (or lost);
            // the UART model stays consistent either way.
            let _ = self.uart.write(offset, b);
        }
    }

    /// Console output that did not pass through the UART's registers (the kvm backend's serial
    /// ring): it goes to the same output, counts and line tail as transmitted bytes.
    pub fn write_output(&mut self, bytes: &[u8]) {
        // A failed host write is counted in the writer (`lost`).
        let _ = self.uart.writer_mut().write_all(bytes);
    }

    /// The output side (byte counts, line tail).
    pub fn console(&self) -> &ConsoleWriter<W> {
        self.uart.writer()
    }

    /// Flushes the output.
    pub fn flush(&mut self) {
        let _ = self.uart.writer_mut().flush();
    }
}

fn register(port: u16) -> u8 {
    // Callers only pass COM1 ports, so the offset is 0..=7.
    u8::try_from(port.wrapping_sub(COM1_PORT) & 7).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_sys_util::eventfd::EFD_NONBLOCK;

    fn console() -> (SerialConsole<Vec<u8>>, EventFd) {
        let evt = EventFd::new(EFD_NONBLOCK).unwrap();
        let c = SerialConsole::new(evt.try_clone().unwrap(), Vec::new());
        (c, evt)
    }

    #[test]
    fn transmitted_bytes_reach_the_output_unchanged() {
        let (mut c, _) = console();
        for b in b"hi\r\nthere\n\x00\xff" {
            c.write(0x3f8, &[*b]);
        }
        assert_eq!(c.console().inner(), b"hi\r\nthere\n\x00\xff");
        assert_eq!(c.console().bytes, 12);
    }

    #[test]
    fn string_output_is_one_byte_per_register_write() {
        let (mut c, _) = console();
        c.write(0x3f8, b"abc\n");
        assert_eq!(c.console().inner(), b"abc\n");
    }

    #[test]
    fn thr_empty_interrupt_is_raised_when_enabled() {
        let (mut c, evt) = console();
        c.write(0x3f9, &[0x02]); // IER: THR empty
        assert_eq!(
            evt.read().unwrap(),
            1,
            "enabling THRE with an empty THR interrupts"
        );
        let mut iir = [0u8];
        c.read(0x3fa, &mut iir);
        assert_eq!(iir[0] & 0x0f, 0x02, "IIR reports THR empty");
        c.write(0x3f8, b"x");
        assert_eq!(
            evt.read().unwrap(),
            1,
            "a transmitted byte interrupts again"
        );
    }

    #[test]
    fn line_status_says_transmitter_empty() {
        let (mut c, _) = console();
        let mut lsr = [0u8];
        c.read(0x3fd, &mut lsr);
        assert_eq!(lsr[0] & 0x60, 0x60);
    }

    #[test]
    fn scratch_register_round_trip_and_divisor_latch() {
        let (mut c, _) = console();
        c.write(0x3ff, &[0x5a]);
        let mut v = [0u8];
        c.read(0x3ff, &mut v);
        assert_eq!(v[0], 0x5a);
        c.write(0x3fb, &[0x80]); // DLAB
        c.write(0x3f8, &[0x01]);
        assert!(
            c.console().inner().is_empty(),
            "divisor writes are not output"
        );
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let mut t = LineTail::default();
        for i in 0..30 {
            t.push(format!("line {i}\n").as_bytes());
        }
        t.push(b"unfinished");
        let l = t.lines();
        assert_eq!(l.len(), TAIL_LINES + 1);
        assert_eq!(l[0], "line 10");
        assert_eq!(l[TAIL_LINES - 1], "line 29");
        assert_eq!(l[TAIL_LINES], "unfinished");
    }

    #[test]
    fn tail_cuts_long_lines_and_survives_garbage() {
        let mut t = LineTail::default();
        t.push(&vec![b'a'; 10_000]);
        t.push(b"\n\xff\xfe\n");
        let l = t.lines();
        assert_eq!(l.len(), 2);
        assert!(l[0].ends_with(" [...]") && l[0].len() == TAIL_LINE_MAX + 6);
        assert_eq!(l[1], "\u{fffd}\u{fffd}");
    }

    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_output_loses_bytes_quietly() {
        let evt = EventFd::new(EFD_NONBLOCK).unwrap();
        let mut c = SerialConsole::new(evt, Broken);
        c.write(0x3f8, b"lost\n");
        assert_eq!(c.console().bytes, 5);
        assert_eq!(c.console().lost, 5);
        assert_eq!(c.console().tail.lines(), vec!["lost".to_string()]);
    }
}
