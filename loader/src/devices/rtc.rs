//! A minimal MC146818 CMOS real-time clock at ports 0x70 (index, bit 7 = NMI mask, ignored)
//! and 0x71 (data), reading the host's UTC time. Kernels poll it at boot (Linux waits for
//! "update in progress" to clear); without it every poll is an unhandled exit.
//!
//! Registers: 0x00/0x02/0x04 seconds/minutes/hours, 0x06 day of week (1 = Sunday), 0x07 day
//! of month, 0x08 month, 0x09 year of century, 0x32 century; 0x0a status A (update never in
//! progress), 0x0b status B (as written; starts as 24-hour BCD), 0x0c status C (no interrupt
//! flags), 0x0d status D (valid RAM and time). Every other register of the 128 is plain RAM.
//! The encoding follows status B: BCD unless bit 2 (binary), 24-hour unless bit 1 is clear.

use std::time::{SystemTime, UNIX_EPOCH};

/// The index port.
pub const CMOS_INDEX_PORT: u16 = 0x70;
/// The data port.
pub const CMOS_DATA_PORT: u16 = 0x71;

const REG_SECONDS: u8 = 0x00;
const REG_MINUTES: u8 = 0x02;
const REG_HOURS: u8 = 0x04;
const REG_WEEKDAY: u8 = 0x06;
const REG_DAY: u8 = 0x07;
const REG_MONTH: u8 = 0x08;
const REG_YEAR: u8 = 0x09;
const REG_STATUS_A: u8 = 0x0a;
const REG_STATUS_B: u8 = 0x0b;
const REG_STATUS_C: u8 = 0x0c;
const REG_STATUS_D: u8 = 0x0d;
const REG_CENTURY: u8 = 0x32;

/// Status A: 32.768 kHz time base, 1024 Hz rate, update-in-progress clear.
const STATUS_A: u8 = 0x26;
/// Status B at reset: 24-hour mode, BCD.
const STATUS_B_RESET: u8 = 0x02;
/// Status D: valid RAM and time.
const STATUS_D: u8 = 0x80;

/// A calendar time (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CivilTime {
    /// Full year.
    pub year: u32,
    /// 1..=12.
    pub month: u8,
    /// 1..=31.
    pub day: u8,
    /// 0..=23.
    pub hour: u8,
    /// 0..=59.
    pub minute: u8,
    /// 0..=59.
    pub second: u8,
    /// 1 = Sunday ..= 7 = Saturday.
    pub weekday: u8,
}

fn small(v: u64) -> u8 {
    u8::try_from(v).unwrap_or(0)
}

/// The calendar time of a Unix timestamp (proleptic Gregorian, UTC).
pub fn civil_from_unix(secs: u64) -> CivilTime {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days, shifted so that eras start on 0000-03-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    CivilTime {
        year: u32::try_from(year).unwrap_or(u32::MAX),
        month: small(month),
        day: small(day),
        hour: small(rem / 3600),
        minute: small(rem / 60 % 60),
        second: small(rem % 60),
        // 1970-01-01 was a Thursday (5 when Sunday is 1).
        weekday: small((days + 4) % 7 + 1),
    }
}

fn bcd(v: u8) -> u8 {
    ((v / 10) << 4) | (v % 10)
}

/// The CMOS RTC.
pub struct Cmos {
    index: u8,
    ram: [u8; 128],
    clock: fn() -> u64,
}

fn host_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Default for Cmos {
    fn default() -> Self {
        Cmos::with_clock(host_clock)
    }
}

impl Cmos {
    /// A CMOS whose clock reads `clock()` (Unix seconds).
    pub fn with_clock(clock: fn() -> u64) -> Self {
        let mut ram = [0u8; 128];
        ram[usize::from(REG_STATUS_B)] = STATUS_B_RESET;
        Cmos {
            index: 0,
            ram,
            clock,
        }
    }

    fn encode(&self, v: u8) -> u8 {
        if self.ram[usize::from(REG_STATUS_B)] & 0x04 != 0 {
            v
        } else {
            bcd(v)
        }
    }

    fn register(&self, reg: u8) -> u8 {
        let t = civil_from_unix((self.clock)());
        match reg {
            REG_SECONDS => self.encode(t.second),
            REG_MINUTES => self.encode(t.minute),
            REG_HOURS => {
                if self.ram[usize::from(REG_STATUS_B)] & 0x02 != 0 {
                    self.encode(t.hour)
                } else {
                    let h12 = match t.hour % 12 {
                        0 => 12,
                        h => h,
                    };
                    self.encode(h12) | if t.hour >= 12 { 0x80 } else { 0 }
                }
            }
            REG_WEEKDAY => self.encode(t.weekday),
            REG_DAY => self.encode(t.day),
            REG_MONTH => self.encode(t.month),
            REG_YEAR => self.encode(small(u64::from(t.year % 100))),
            REG_CENTURY => self.encode(small(u64::from(t.year / 100 % 100))),
            REG_STATUS_A => STATUS_A,
            REG_STATUS_C => 0,
            REG_STATUS_D => STATUS_D,
            r => self.ram[usize::from(r & 0x7f)],
        }
    }

    /// A guest read of `port` (0x70 or 0x71).
    pub fn read(&mut self, port: u16) -> u8 {
        if port == CMOS_DATA_PORT {
            self.register(self.index)
        } else {
            self.index
        }
    }

    /// A guest write of `value` to `port` (0x70 or 0x71). Writes to the clock and status A/C/D
    /// registers are ignored (the clock follows the host).
    pub fn write(&mut self, port: u16, value: u8) {
        if port == CMOS_INDEX_PORT {
            self.index = value & 0x7f;
            return;
        }
        match self.index {
            REG_SECONDS | REG_MINUTES | REG_HOURS | REG_WEEKDAY | REG_DAY | REG_MONTH
            | REG_YEAR | REG_CENTURY | REG_STATUS_A | REG_STATUS_C | REG_STATUS_D => {}
            r => self.ram[usize::from(r & 0x7f)] = value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar() {
        let t = civil_from_unix(0);
        assert_eq!((t.year, t.month, t.day, t.weekday), (1970, 1, 1, 5));
        // 2023-11-14 22:13:20 UTC, a Tuesday.
        let t = civil_from_unix(1_700_000_000);
        assert_eq!(
            t,
            CivilTime {
                year: 2023,
                month: 11,
                day: 14,
                hour: 22,
                minute: 13,
                second: 20,
                weekday: 3
            }
        );
        // 2000-02-29 (leap day) 12:00:00, a Tuesday.
        let t = civil_from_unix(951_825_600);
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.weekday),
            (2000, 2, 29, 12, 3)
        );
    }

    fn read(c: &mut Cmos, reg: u8) -> u8 {
        c.write(CMOS_INDEX_PORT, reg);
        c.read(CMOS_DATA_PORT)
    }

    #[test]
    fn registers_in_bcd_and_binary() {
        let mut c = Cmos::with_clock(|| 1_700_000_000);
        assert_eq!(read(&mut c, 0x00), 0x20);
        assert_eq!(read(&mut c, 0x02), 0x13);
        assert_eq!(read(&mut c, 0x04), 0x22);
        assert_eq!(read(&mut c, 0x06), 0x03);
        assert_eq!(read(&mut c, 0x07), 0x14);
        assert_eq!(read(&mut c, 0x08), 0x11);
        assert_eq!(read(&mut c, 0x09), 0x23);
        assert_eq!(read(&mut c, 0x32), 0x20);
        assert_eq!(read(&mut c, 0x0a) & 0x80, 0, "update never in progress");
        assert_eq!(read(&mut c, 0x0d), 0x80);
        c.write(CMOS_INDEX_PORT, 0x0b);
        c.write(CMOS_DATA_PORT, 0x06); // binary, 24 h
        assert_eq!(read(&mut c, 0x04), 22);
        assert_eq!(read(&mut c, 0x09), 23);
        c.write(CMOS_INDEX_PORT, 0x0b);
        c.write(CMOS_DATA_PORT, 0x04); // binary, 12 h
        assert_eq!(read(&mut c, 0x04), 0x80 | 10);
    }

    #[test]
    fn ram_and_ignored_writes() {
        let mut c = Cmos::with_clock(|| 0);
        c.write(CMOS_INDEX_PORT, 0x80 | 0x40); // NMI mask bit is dropped
        c.write(CMOS_DATA_PORT, 0x5a);
        assert_eq!(read(&mut c, 0x40), 0x5a);
        c.write(CMOS_INDEX_PORT, 0x00);
        c.write(CMOS_DATA_PORT, 0x59);
        assert_eq!(read(&mut c, 0x00), 0x00, "the clock follows the host");
        assert_eq!(c.read(CMOS_INDEX_PORT), 0x00);
    }
}
