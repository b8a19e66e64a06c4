//! Guest page tables (read by walking them in guest RAM) and the shadow page tables the CPU
//! really uses while the guest kernel runs at CPL3.
//!
//! Each guest address space (guest CR3) gets two shadow roots: the *kernel* root shows every
//! guest mapping with the user bit set (the kernel runs at CPL3) and the *user* root only the
//! mappings a guest user task may touch. Both map the wedge hole (top 1 GiB) from static,
//! host-owned tables: the kernel view with the runtime, the user view with only what the CPU
//! needs at CPL0.
//!
//! KVM (on a host without EPT, like PVM) shadows these tables again and trusts that page-table
//! pages change only through writes it can see. The host writes them from userspace, so it
//! only ever makes changes KVM picks up on its own (an entry going from not present to present,
//! or a permission upgrade, which KVM finds when the access faults). Anything else (a mapping
//! removed, moved to another frame, or made read-only) is done by copying the path from the
//! root down to the changed table into fresh pages and loading the new root; pages are never
//! reused until the whole pool is recycled, and recycling deletes and re-adds the slot, which
//! makes KVM drop every shadow page it built (docs/backends.md).

use vm_memory::{Bytes, GuestAddress};
use wedge::layout::{R_HOLE_PT, R_POOL, SLOT_GPA};

use super::slot::{Slot, SlotError};
use crate::vstate::memory::GuestMemory;

/// Page-table entry bits.
pub const P: u64 = 1;
/// Writable.
pub const W: u64 = 1 << 1;
/// User.
pub const U: u64 = 1 << 2;
/// Write-through.
pub const PWT: u64 = 1 << 3;
/// Cache disable.
pub const PCD: u64 = 1 << 4;
/// Accessed.
pub const A: u64 = 1 << 5;
/// Dirty.
pub const D: u64 = 1 << 6;
/// Page size (in a PDE or PDPTE).
pub const PS: u64 = 1 << 7;
/// No execute.
pub const NX: u64 = 1 << 63;
/// Frame bits of an entry (52-bit physical addresses).
pub const FRAME: u64 = 0x000f_ffff_ffff_f000;

/// Page-fault error code bits.
pub const PF_P: u64 = 1;
/// Write access.
pub const PF_W: u64 = 2;
/// User-mode access.
pub const PF_U: u64 = 4;
/// Instruction fetch.
pub const PF_I: u64 = 16;

/// Guest-physical addresses the guest may map: below 4 GiB (RAM and the MMIO holes; the wedge
/// slot is above).
pub const GUEST_PHYS_LIMIT: u64 = 1 << 32;

/// How the guest's page tables translate one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// Guest-physical address of the 4 KiB page holding the address.
    pub frame: u64,
    /// Writable at every level.
    pub writable: bool,
    /// User-accessible at every level.
    pub user: bool,
    /// Not executable at some level (only with EFER.NXE).
    pub nx: bool,
    /// The leaf entry's dirty bit.
    pub dirty: bool,
    /// PWT and PCD of the leaf.
    pub cache: u64,
    /// Guest-physical addresses of the entries walked (root first).
    pub entries: [u64; 4],
    /// How many of `entries` are valid (the leaf is the last).
    pub levels: usize,
}

/// Why an address does not translate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// An entry on the way is not present: a page fault the guest must see.
    NotPresent,
    /// A table or a frame lies outside what the guest may use (a broken guest).
    Bad(String),
}

fn read_entry(mem: &GuestMemory, gpa: u64) -> Result<u64, WalkError> {
    mem.read_obj::<u64>(GuestAddress(gpa)).map_err(|_| {
        WalkError::Bad(format!(
            "page-table entry at guest-physical {gpa:#x} is outside guest RAM"
        ))
    })
}

/// Walks the guest's 4-level page tables at `cr3` for virtual address `va`.
pub fn walk(mem: &GuestMemory, cr3: u64, va: u64, nxe: bool) -> Result<Translation, WalkError> {
    let mut table = cr3 & FRAME;
    let mut t = Translation {
        frame: 0,
        writable: true,
        user: true,
        nx: false,
        dirty: false,
        cache: 0,
        entries: [0; 4],
        levels: 0,
    };
    for level in (0..4).rev() {
        let index = (va >> (12 + 9 * level)) & 511;
        let gpa = table + index * 8;
        let e = read_entry(mem, gpa)?;
        t.entries[t.levels] = gpa;
        t.levels += 1;
        if e & P == 0 {
            return Err(WalkError::NotPresent);
        }
        t.writable &= e & W != 0;
        t.user &= e & U != 0;
        t.nx |= nxe && e & NX != 0;
        let large = level > 0 && level < 3 && e & PS != 0;
        if level == 0 || large {
            let page_mask = (1u64 << (12 + 9 * level)) - 1;
            let base = e & FRAME & !page_mask;
            t.frame = base + (va & page_mask & !0xfff);
            t.dirty = e & D != 0;
            t.cache = e & (PWT | PCD);
            if t.frame >= GUEST_PHYS_LIMIT {
                return Err(WalkError::Bad(format!(
                    "virtual address {va:#x} maps guest-physical {:#x}, above the machine's 4 GiB \
                     (the wedge's memory is there)",
                    t.frame
                )));
            }
            return Ok(t);
        }
        table = e & FRAME;
    }
    unreachable!("a 4-level walk ends at level 0")
}

/// Sets the accessed bits of every entry walked and, for a write, the dirty bit of the leaf.
pub fn set_accessed(mem: &GuestMemory, t: &Translation, dirty: bool) -> Result<(), WalkError> {
    for (i, &gpa) in t.entries[..t.levels].iter().enumerate() {
        let e = read_entry(mem, gpa)?;
        let mut n = e | A;
        if dirty && i + 1 == t.levels {
            n |= D;
        }
        if n != e {
            mem.write_obj(n, GuestAddress(gpa))
                .map_err(|_| WalkError::Bad(format!("cannot write guest PTE at {gpa:#x}")))?;
        }
    }
    Ok(())
}

/// An access, in the guest's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// A write.
    pub write: bool,
    /// An instruction fetch.
    pub fetch: bool,
    /// From a guest user task (else from the guest kernel).
    pub user: bool,
}

/// Whether the guest's translation allows the access (CR0.WP applies to kernel writes).
pub fn permits(t: &Translation, a: Access, wp: bool) -> bool {
    if a.user && !t.user {
        return false;
    }
    if a.write && !t.writable && (a.user || wp) {
        return false;
    }
    !(a.fetch && t.nx)
}

/// The page-fault error code the guest sees for a denied access (`present`: the translation
/// exists, the permissions refuse it).
pub fn error_code(a: Access, present: bool, nxe: bool) -> u64 {
    let mut e = 0;
    if present {
        e |= PF_P;
    }
    if a.write {
        e |= PF_W;
    }
    if a.user {
        e |= PF_U;
    }
    if a.fetch && nxe {
        e |= PF_I;
    }
    e
}

/// Which view a shadow root gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// The guest kernel's view (everything, user bit set).
    Kernel,
    /// A guest user task's view (user mappings only).
    User,
}

/// Guest paging settings that shape the shadow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Paging {
    /// Guest CR3.
    pub cr3: u64,
    /// CR0.WP.
    pub wp: bool,
    /// EFER.NXE.
    pub nxe: bool,
}

/// The shadow leaf entry for a translation in a view (0 if the view does not map it).
pub fn shadow_entry(t: &Translation, view: View, p: Paging) -> u64 {
    if view == View::User && !t.user {
        return 0;
    }
    let may_write = match view {
        View::Kernel => t.writable || !p.wp,
        View::User => t.writable,
    };
    let mut e = t.frame | P | U | A | t.cache;
    if may_write && t.dirty {
        e |= W | D;
    }
    if t.nx {
        e |= NX;
    }
    e
}

/// Whether replacing shadow entry `old` by `new` is something KVM finds on its own: the entry
/// was not present, or `new` maps the same frame with at least the same rights.
pub fn is_upgrade(old: u64, new: u64) -> bool {
    if old & P == 0 {
        return true;
    }
    new & P != 0
        && new & FRAME == old & FRAME
        && (new & W != 0 || old & W == 0)
        && (new & NX == 0 || old & NX != 0)
        && new & (PWT | PCD) == old & (PWT | PCD)
}

/// Page tables of the wedge hole (static, in `R_HOLE_PT`): per view, one PD page then the PTs
/// for the first `HOLE_PTS` 2 MiB of the hole.
pub const HOLE_PTS: u64 = 2;

/// Guest-physical address of the hole's PD for a view.
pub fn hole_pd(view: View) -> u64 {
    let per_view = (1 + HOLE_PTS) * 0x1000;
    R_HOLE_PT.gpa() + if view == View::Kernel { 0 } else { per_view }
}

/// What the guest's tables give for one 2 MiB region, as shadow entries.
// A value lives on the stack for one fill or sync, as the bare 4 KiB array before it did.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Region {
    /// One large page in the kernel view: the shadow PDE (with `PS`). KVM can then back it with
    /// one host huge page (guest RAM is advised `MADV_HUGEPAGE`, vstate/memory.rs) instead of
    /// 512 small mappings, each with its own TLB entry.
    Large(u64),
    /// The 512 shadow PTEs (0 where the view maps nothing).
    Small([u64; 512]),
}

impl Region {
    /// The region as 512 small entries (a large page split into its 4 KiB frames).
    fn entries(&self) -> [u64; 512] {
        match *self {
            Region::Small(e) => e,
            Region::Large(pde) => {
                let flags = pde & !FRAME & !PS;
                let mut out = [0u64; 512];
                for (i, e) in out.iter_mut().enumerate() {
                    *e = ((pde & FRAME) + (i as u64) * 0x1000) | flags;
                }
                out
            }
        }
    }
}

/// Where the shadow of a 2 MiB region is.
enum Leaf {
    /// Not shadowed (some level missing).
    Missing,
    /// A shadow page table (guest-physical).
    Table(u64),
    /// A large page: the PDE's guest-physical address and value.
    Large(u64, u64),
}

/// The shadow page tables of the current guest address space.
pub struct Shadow {
    pool_next: u64,
    /// Guest paging settings the roots were built for.
    pub paging: Paging,
    /// Kernel-view root (guest-physical, in the pool).
    pub kernel_root: u64,
    /// User-view root, made on first use.
    pub user_root: Option<u64>,
    /// Pool recycles so far.
    pub recycles: u64,
    /// Pages allocated so far (all time).
    pub pages_allocated: u64,
    /// Path copies made (changes KVM would not have seen in place).
    pub path_copies: u64,
    /// Entries filled on hidden page faults (with their neighbours).
    pub fills: u64,
}

/// Shadow bookkeeping failed: the pool could not provide a page even after recycling, or the
/// slot refused an access.
#[derive(Debug, thiserror::Error)]
pub enum ShadowError {
    /// The slot.
    #[error(transparent)]
    Slot(#[from] SlotError),
    /// The pool is exhausted (more live tables than it holds).
    #[error("the shadow page-table pool ({0} pages) is exhausted")]
    PoolFull(u64),
    /// The guest's tables are broken.
    #[error("{0}")]
    Guest(String),
}

impl Shadow {
    /// Empty roots for `paging` (pool from its start).
    pub fn new(slot: &Slot, paging: Paging) -> Result<Shadow, ShadowError> {
        let mut s = Shadow {
            pool_next: 0,
            paging,
            kernel_root: 0,
            user_root: None,
            recycles: 0,
            pages_allocated: 0,
            path_copies: 0,
            fills: 0,
        };
        s.kernel_root = s.new_root(slot, View::Kernel)?;
        Ok(s)
    }

    /// Whether the pool has room for `pages` more pages.
    pub fn has_room(&self, pages: u64) -> bool {
        self.pool_next + pages * 0x1000 <= R_POOL.size
    }

    fn alloc(&mut self, slot: &Slot) -> Result<u64, ShadowError> {
        if !self.has_room(1) {
            return Err(ShadowError::PoolFull(R_POOL.size / 0x1000));
        }
        let gpa = R_POOL.gpa() + self.pool_next;
        self.pool_next += 0x1000;
        self.pages_allocated += 1;
        slot.write(gpa, &[0u8; 0x1000])?;
        Ok(gpa)
    }

    /// A root with only the wedge hole mapped.
    fn new_root(&mut self, slot: &Slot, view: View) -> Result<u64, ShadowError> {
        let pml4 = self.alloc(slot)?;
        let pdpt = self.alloc(slot)?;
        slot.write_u64(pdpt + 511 * 8, hole_pd(view) | P | W | U | A)?;
        slot.write_u64(pml4 + 511 * 8, pdpt | P | W | U | A)?;
        Ok(pml4)
    }

    /// Pages the pool must keep free before an operation that allocates (a fill, a path copy,
    /// a new user root); below that, the caller resets first.
    pub const RESERVE: u64 = 16;

    /// Starts over for `paging` (a guest CR3 write or a change of WP/NXE, or a pool running
    /// out): fresh roots, and a recycled pool if it is more than half used or `force`. Returns
    /// whether the pool was recycled (the caller must then zap the slot before the guest runs
    /// again).
    pub fn reset(&mut self, slot: &Slot, paging: Paging, force: bool) -> Result<bool, ShadowError> {
        let recycle = force || !self.has_room(R_POOL.size / 0x1000 / 2);
        if recycle {
            self.pool_next = 0;
            self.recycles += 1;
        }
        self.paging = paging;
        self.user_root = None;
        self.kernel_root = self.new_root(slot, View::Kernel)?;
        Ok(recycle)
    }

    /// The root of a view (made if needed).
    pub fn root(&mut self, slot: &Slot, view: View) -> Result<u64, ShadowError> {
        match view {
            View::Kernel => Ok(self.kernel_root),
            View::User => match self.user_root {
                Some(r) => Ok(r),
                None => {
                    let r = self.new_root(slot, View::User)?;
                    self.user_root = Some(r);
                    Ok(r)
                }
            },
        }
    }

    /// The shadow of the 2 MiB region holding `va` in `root`: its PT or large PDE. With
    /// `create`, missing upper tables are made (and linked, not present to present) and the
    /// result is never `Missing`: a missing PT is reported as `Large(pde_gpa, 0)` (an empty
    /// PDE the caller may fill with either).
    fn leaf(&mut self, slot: &Slot, root: u64, va: u64, create: bool) -> Result<Leaf, ShadowError> {
        let mut table = root;
        for level in (1..4).rev() {
            let index = (va >> (12 + 9 * level)) & 511;
            let gpa = table + index * 8;
            let e = slot.read_u64(gpa)?;
            if level == 1 && (e & PS != 0 || (e & P == 0 && create)) {
                return Ok(Leaf::Large(gpa, e));
            }
            if e & P != 0 {
                table = e & FRAME;
                continue;
            }
            if !create {
                return Ok(Leaf::Missing);
            }
            let next = self.alloc(slot)?;
            slot.write_u64(gpa, next | P | W | U | A)?;
            table = next;
        }
        Ok(Leaf::Table(table))
    }

    /// The 512 shadow entries the guest's tables give for the 2 MiB region holding `va`
    /// (prefetch: every present, permitted page; accessed bits set as a CPU may set them
    /// speculatively). Walks the upper levels once and reads the guest's leaf table whole.
    fn region(&self, mem: &GuestMemory, view: View, va: u64) -> Result<Region, ShadowError> {
        let p = self.paging;
        let base = va & !0x1f_ffff;
        let wanted = usize::try_from((va >> 12) & 511).unwrap_or(0);
        let mut out = [0u64; 512];
        let guest = |e: WalkError| match e {
            WalkError::Bad(why) => ShadowError::Guest(why),
            WalkError::NotPresent => ShadowError::Guest("not present".into()),
        };
        let mut up = Translation {
            frame: 0,
            writable: true,
            user: true,
            nx: false,
            dirty: false,
            cache: 0,
            entries: [0; 4],
            levels: 0,
        };
        let mut table = p.cr3 & FRAME;
        // PML4E, PDPTE, PDE.
        for level in (1..4).rev() {
            let gpa = table + ((base >> (12 + 9 * level)) & 511) * 8;
            let e = read_entry(mem, gpa).map_err(guest)?;
            if e & P == 0 {
                return Ok(Region::Small(out));
            }
            up.entries[up.levels] = gpa;
            up.levels += 1;
            up.writable &= e & W != 0;
            up.user &= e & U != 0;
            up.nx |= p.nxe && e & NX != 0;
            if level < 3 && e & PS != 0 {
                // A 1 GiB or 2 MiB page: the region's 512 frames follow from it.
                let page = (1u64 << (12 + 9 * level)) - 1;
                let first = (e & FRAME & !page) + (base & page);
                if first + 0x20_0000 > GUEST_PHYS_LIMIT {
                    return Err(ShadowError::Guest(format!(
                        "virtual address {va:#x} maps guest-physical {:#x}, above the machine's \
                         4 GiB (the wedge's memory is there)",
                        first + (va & 0x1f_ffff)
                    )));
                }
                up.dirty = e & D != 0;
                up.cache = e & (PWT | PCD);
                set_accessed(mem, &up, false).map_err(guest)?;
                let t = Translation { frame: first, ..up };
                let e = shadow_entry(&t, view, p);
                if view == View::Kernel && e != 0 {
                    return Ok(Region::Large(e | PS));
                }
                for (i, slot) in out.iter_mut().enumerate() {
                    let t = Translation {
                        frame: first + (i as u64) * 0x1000,
                        ..up
                    };
                    *slot = shadow_entry(&t, view, p);
                }
                return Ok(Region::Small(out));
            }
            table = e & FRAME;
        }
        // A 4 KiB page table: read it whole.
        let mut raw = [0u8; 4096];
        mem.read_slice(&mut raw, GuestAddress(table)).map_err(|_| {
            ShadowError::Guest(format!(
                "page table at guest-physical {table:#x} is outside guest RAM"
            ))
        })?;
        set_accessed(mem, &up, false).map_err(guest)?;
        let mut changed = false;
        for (i, slot) in out.iter_mut().enumerate() {
            let mut e = u64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
            if e & P == 0 {
                continue;
            }
            let frame = e & FRAME;
            if frame >= GUEST_PHYS_LIMIT {
                if i == wanted {
                    return Err(ShadowError::Guest(format!(
                        "virtual address {va:#x} maps guest-physical {frame:#x}, above the \
                         machine's 4 GiB (the wedge's memory is there)"
                    )));
                }
                continue;
            }
            let t = Translation {
                frame,
                writable: up.writable && e & W != 0,
                user: up.user && e & U != 0,
                nx: up.nx || (p.nxe && e & NX != 0),
                dirty: e & D != 0,
                cache: e & (PWT | PCD),
                ..up
            };
            let shadow = shadow_entry(&t, view, p);
            if shadow != 0 && e & A == 0 {
                e |= A;
                raw[i * 8..i * 8 + 8].copy_from_slice(&e.to_le_bytes());
                changed = true;
            }
            *slot = shadow;
        }
        if changed {
            mem.write_slice(&raw, GuestAddress(table)).map_err(|_| {
                ShadowError::Guest(format!("cannot write guest page table at {table:#x}"))
            })?;
        }
        Ok(Region::Small(out))
    }

    /// Fills the shadow for a hidden fault at `va` in `view` (the guest's tables allow the
    /// access; a write also sets the guest's dirty bit first).
    pub fn fill(
        &mut self,
        slot: &Slot,
        mem: &GuestMemory,
        view: View,
        va: u64,
    ) -> Result<(), ShadowError> {
        let root = self.root(slot, view)?;
        let region = self.region(mem, view, va)?;
        let pt = match (self.leaf(slot, root, va, true)?, region) {
            (Leaf::Large(pde, old), Region::Large(new)) => {
                if new != old && is_upgrade(old, new) {
                    slot.write_u64(pde, new)?;
                }
                None
            }
            // A large page the guest has since split: left to sync_region (invlpg/CR3).
            (Leaf::Large(_, old), Region::Small(_)) if old & P != 0 => None,
            (Leaf::Large(pde, _), Region::Small(_)) => {
                let pt = self.alloc(slot)?;
                slot.write_u64(pde, pt | P | W | U | A)?;
                Some(pt)
            }
            (Leaf::Table(pt), _) => Some(pt),
            (Leaf::Missing, _) => return Err(ShadowError::Guest("no leaf table".into())),
        };
        if let Some(pt) = pt {
            for (i, &new) in region.entries().iter().enumerate() {
                let gpa = pt + (i as u64) * 8;
                let old = slot.read_u64(gpa)?;
                if new != old && new != 0 && is_upgrade(old, new) {
                    slot.write_u64(gpa, new)?;
                }
            }
        }
        self.fills += 1;
        Ok(())
    }

    /// Brings the shadow of the 2 MiB region holding `va` in line with the guest's tables (an
    /// invlpg, or a fill that must also take mappings away). Returns the root to load if it
    /// changed (a path copy).
    pub fn sync_region(
        &mut self,
        slot: &Slot,
        mem: &GuestMemory,
        view: View,
        va: u64,
    ) -> Result<Option<u64>, ShadowError> {
        let root = match view {
            View::Kernel => self.kernel_root,
            View::User => match self.user_root {
                Some(r) => r,
                None => return Ok(None),
            },
        };
        let region = match self.leaf(slot, root, va, false)? {
            Leaf::Missing => return Ok(None),
            Leaf::Large(pde, old) => {
                let region = self.region(mem, view, va)?;
                if let Region::Large(new) = region {
                    if new == old {
                        return Ok(None);
                    }
                    if is_upgrade(old, new) {
                        slot.write_u64(pde, new)?;
                        return Ok(None);
                    }
                }
                region
            }
            Leaf::Table(pt) => {
                let new = self.region(mem, view, va)?.entries();
                let mut old = [0u64; 512];
                let mut raw = [0u8; 4096];
                slot.read(pt, &mut raw)?;
                for (i, o) in old.iter_mut().enumerate() {
                    *o = u64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
                }
                let in_place = old
                    .iter()
                    .zip(new.iter())
                    .all(|(&o, &n)| o == n || is_upgrade(o, n));
                if in_place {
                    for (i, (&o, &n)) in old.iter().zip(new.iter()).enumerate() {
                        if o != n {
                            slot.write_u64(pt + (i as u64) * 8, n)?;
                        }
                    }
                    return Ok(None);
                }
                Region::Small(new)
            }
        };
        // Copy the path: (PT,) PD, PDPT, PML4 into fresh pages.
        if !self.has_room(4) {
            return Err(ShadowError::PoolFull(R_POOL.size / 0x1000));
        }
        let pde = match region {
            Region::Large(new) => new,
            Region::Small(new) => {
                let new_pt = self.alloc(slot)?;
                let mut bytes = Vec::with_capacity(4096);
                for n in new {
                    bytes.extend_from_slice(&n.to_le_bytes());
                }
                slot.write(new_pt, &bytes)?;
                new_pt | P | W | U | A
            }
        };
        let mut tables = [0u64; 4];
        let mut t = root;
        for level in (1..4).rev() {
            tables[level] = t;
            let e = slot.read_u64(t + ((va >> (12 + 9 * level)) & 511) * 8)?;
            t = e & FRAME;
        }
        let mut child = 0;
        for (level, &old_table) in tables.iter().enumerate().skip(1) {
            let level = level as u64;
            let copy = self.alloc(slot)?;
            let mut page = [0u8; 4096];
            slot.read(old_table, &mut page)?;
            slot.write(copy, &page)?;
            let index = (va >> (12 + 9 * level)) & 511;
            let entry = if level == 1 { pde } else { child | P | W | U | A };
            slot.write_u64(copy + index * 8, entry)?;
            child = copy;
        }
        match view {
            View::Kernel => self.kernel_root = child,
            View::User => self.user_root = Some(child),
        }
        self.path_copies += 1;
        Ok(Some(child))
    }
}

/// Writes the wedge hole's static page tables (both views) for the region permissions
/// `pages(view, offset) -> Option<flags>` over the first `HOLE_PTS` * 2 MiB of the hole.
pub fn write_hole_tables(
    slot: &Slot,
    pages: impl Fn(View, u64) -> Option<u64>,
) -> Result<(), SlotError> {
    for view in [View::Kernel, View::User] {
        let pd = hole_pd(view);
        for t in 0..HOLE_PTS {
            let pt = pd + (1 + t) * 0x1000;
            slot.write_u64(pd + t * 8, pt | P | W | U | A)?;
            for i in 0..512u64 {
                let off = t * 0x20_0000 + i * 0x1000;
                if let Some(flags) = pages(view, off) {
                    slot.write_u64(pt + i * 8, (SLOT_GPA + off) | P | A | D | flags)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vstate::memory::create_guest_memory;

    fn put(mem: &GuestMemory, gpa: u64, v: u64) {
        mem.write_obj(v, GuestAddress(gpa)).unwrap();
    }

    /// 4-level tables at 0x1000.. mapping va 0xffff_ffff_8010_0000 -> 0x10_0000 (4 KiB, RW)
    /// and va 0x40_0000 -> 0x20_0000 (2 MiB page, user, RO).
    fn tables() -> GuestMemory {
        let m = create_guest_memory(0x40_0000).unwrap();
        put(&m, 0x1000 + 511 * 8, 0x2000 | P | W);
        put(&m, 0x2000 + 510 * 8, 0x3000 | P | W);
        put(&m, 0x3000, 0x4000 | P | W);
        put(&m, 0x4000 + 0x100 * 8, 0x10_0000 | P | W | D);
        put(&m, 0x1000, 0x5000 | P | W | U);
        put(&m, 0x5000, 0x6000 | P | W | U);
        put(&m, 0x6000 + 2 * 8, 0x20_0000 | P | U | PS);
        m
    }

    /// The paging settings of [`tables`] (root at 0x1000, CR0.WP set, no NXE).
    const TABLES_PAGING: Paging = Paging {
        cr3: 0x1000,
        wp: true,
        nxe: false,
    };

    /// [`tables`], a slot and an empty shadow for them.
    fn shadowed() -> (GuestMemory, Slot, Shadow) {
        let slot = Slot::new().unwrap();
        let sh = Shadow::new(&slot, TABLES_PAGING).unwrap();
        (tables(), slot, sh)
    }

    #[test]
    fn walks_follow_the_tables_and_set_accessed_bits() {
        let m = tables();
        let t = walk(&m, 0x1000, 0xffff_ffff_8010_0123, false).unwrap();
        assert_eq!(t.frame, 0x10_0000);
        assert!(t.writable && !t.user && t.dirty);
        let t2 = walk(&m, 0x1000, 0x40_5678, false).unwrap();
        assert_eq!(t2.frame, 0x20_5000);
        assert!(t2.user && !t2.writable && t2.levels == 3);
        assert_eq!(
            walk(&m, 0x1000, 0x60_0000, false),
            Err(WalkError::NotPresent)
        );
        set_accessed(&m, &t2, false).unwrap();
        assert_eq!(m.read_obj::<u64>(GuestAddress(0x6000 + 16)).unwrap() & A, A);
        let user_write = Access {
            write: true,
            fetch: false,
            user: true,
        };
        assert!(!permits(&t2, user_write, true));
        assert_eq!(error_code(user_write, true, false), PF_P | PF_W | PF_U);
        assert!(!permits(
            &t,
            Access {
                write: false,
                fetch: false,
                user: true
            },
            true
        ));
        assert!(permits(
            &t,
            Access {
                write: true,
                fetch: false,
                user: false
            },
            true
        ));
    }

    #[test]
    fn frames_above_4_gib_are_refused() {
        let m = tables();
        put(&m, 0x4000 + 0x101 * 8, 0x1_0000_0000 | P | W);
        assert!(matches!(
            walk(&m, 0x1000, 0xffff_ffff_8010_1000, false),
            Err(WalkError::Bad(_))
        ));
    }

    #[test]
    fn shadow_entries_and_upgrades() {
        let m = tables();
        let p = TABLES_PAGING;
        let t = walk(&m, 0x1000, 0x40_0000, false).unwrap();
        assert_eq!(shadow_entry(&t, View::User, p) & (P | U | W), P | U);
        let k = walk(&m, 0x1000, 0xffff_ffff_8010_0000, false).unwrap();
        assert_eq!(shadow_entry(&k, View::User, p), 0);
        let e = shadow_entry(&k, View::Kernel, p);
        assert_eq!(e & (P | U | W | FRAME), P | U | W | 0x10_0000);
        assert!(is_upgrade(0, e));
        assert!(is_upgrade(e & !W, e));
        assert!(!is_upgrade(e, e & !W));
        assert!(!is_upgrade(e, (e & !FRAME) | 0x11_0000));
        assert!(!is_upgrade(e, 0));
    }

    fn shadow_leaf(slot: &Slot, root: u64, va: u64) -> u64 {
        let mut table = root;
        for level in (1..4).rev() {
            let e = slot
                .read_u64(table + ((va >> (12 + 9 * level)) & 511) * 8)
                .unwrap();
            assert_ne!(e & P, 0, "level {level} missing for {va:#x}");
            if level == 1 && e & PS != 0 {
                // A large page: the 4 KiB entry it stands for.
                return Region::Large(e).entries()[usize::try_from((va >> 12) & 511).unwrap()];
            }
            table = e & FRAME;
        }
        slot.read_u64(table + ((va >> 12) & 511) * 8).unwrap()
    }

    /// The shadow PDE for `va`.
    fn shadow_pde(slot: &Slot, root: u64, va: u64) -> u64 {
        let mut table = root;
        for level in (2..4).rev() {
            table = slot
                .read_u64(table + ((va >> (12 + 9 * level)) & 511) * 8)
                .unwrap()
                & FRAME;
        }
        slot.read_u64(table + ((va >> 21) & 511) * 8).unwrap()
    }

    #[test]
    fn a_kernel_large_page_is_one_large_shadow_entry_upgraded_or_copied() {
        // The kernel maps 0x40_0000 (2 MiB, read-only for the user bit, clean) as well.
        let (m, slot, mut sh) = shadowed();
        sh.fill(&slot, &m, View::Kernel, 0x40_3000).unwrap();
        let pde = shadow_pde(&slot, sh.kernel_root, 0x40_3000);
        assert_eq!(pde & (FRAME | P | U | W | PS), 0x20_0000 | P | U | PS, "{pde:#x}");
        assert_eq!(shadow_leaf(&slot, sh.kernel_root, 0x40_3000) & FRAME, 0x20_3000);
        // The users' view of the same page stays small pages.
        sh.fill(&slot, &m, View::User, 0x40_3000).unwrap();
        let user_pde = shadow_pde(&slot, sh.user_root.unwrap(), 0x40_3000);
        assert_eq!(user_pde & PS, 0, "{user_pde:#x}");
        // The guest makes it writable and dirty: an upgrade, in place.
        put(&m, 0x6000 + 2 * 8, 0x20_0000 | P | W | U | PS | A | D);
        assert_eq!(sh.sync_region(&slot, &m, View::Kernel, 0x40_3000).unwrap(), None);
        let pde = shadow_pde(&slot, sh.kernel_root, 0x40_3000);
        assert_eq!(pde & (FRAME | W | PS), 0x20_0000 | W | PS, "{pde:#x}");
        // It moves to another frame: a path copy with a new root.
        put(&m, 0x6000 + 2 * 8, 0x60_0000 | P | W | U | PS | A | D);
        let root = sh
            .sync_region(&slot, &m, View::Kernel, 0x40_3000)
            .unwrap()
            .expect("a moved large page needs a new root");
        assert_eq!(shadow_leaf(&slot, root, 0x40_3000) & FRAME, 0x60_3000);
        // Split into small pages by the guest: a path copy again, with a page table.
        put(&m, 0x7000 + 3 * 8, 0x30_0000 | P | W | D);
        put(&m, 0x6000 + 2 * 8, 0x7000 | P | W | U);
        let root = sh
            .sync_region(&slot, &m, View::Kernel, 0x40_3000)
            .unwrap()
            .expect("a split large page needs a new root");
        assert_eq!(shadow_pde(&slot, root, 0x40_3000) & PS, 0);
        assert_eq!(shadow_leaf(&slot, root, 0x40_3000) & FRAME, 0x30_0000);
    }

    const KVA: u64 = 0xffff_ffff_8010_0000;

    #[test]
    fn fills_show_the_kernel_everything_and_users_only_their_pages() {
        let (m, slot, mut sh) = shadowed();
        sh.fill(&slot, &m, View::Kernel, KVA).unwrap();
        let e = shadow_leaf(&slot, sh.kernel_root, KVA);
        assert_eq!(e & (FRAME | P | U | W), 0x10_0000 | P | U | W, "{e:#x}");
        // The 2 MiB user page is prefetched as 512 entries; read-only, user.
        sh.fill(&slot, &m, View::User, 0x40_3000).unwrap();
        let root = sh.user_root.unwrap();
        assert_eq!(
            shadow_leaf(&slot, root, 0x40_3000) & (FRAME | P | U | W),
            0x20_3000 | P | U
        );
        assert_eq!(shadow_leaf(&slot, root, 0x5f_f000) & FRAME, 0x3f_f000);
        // The hole is in both views; the kernel mapping is not in the user view.
        assert_eq!(slot.read_u64(root + 511 * 8).unwrap() & P, P);
        let pdpt = slot.read_u64(root + 511 * 8).unwrap() & FRAME;
        assert_eq!(
            slot.read_u64(pdpt + 511 * 8).unwrap() & FRAME,
            hole_pd(View::User)
        );
        assert_eq!(slot.read_u64(pdpt + 510 * 8).unwrap(), 0);
        // The guest's accessed bits were set.
        assert_ne!(
            m.read_obj::<u64>(GuestAddress(0x4000 + 0x100 * 8)).unwrap() & A,
            0
        );
    }

    #[test]
    fn a_changed_mapping_is_a_path_copy_and_an_upgrade_is_in_place() {
        let (m, slot, mut sh) = shadowed();
        sh.fill(&slot, &m, View::Kernel, KVA).unwrap();
        let old_root = sh.kernel_root;
        // Upgrade: a clean read-only page made writable and dirty: same root.
        put(&m, 0x4000 + 0x101 * 8, 0x11_0000 | P);
        sh.fill(&slot, &m, View::Kernel, KVA + 0x1000).unwrap();
        assert_eq!(shadow_leaf(&slot, old_root, KVA + 0x1000) & W, 0);
        put(&m, 0x4000 + 0x101 * 8, 0x11_0000 | P | W | D);
        assert_eq!(
            sh.sync_region(&slot, &m, View::Kernel, KVA + 0x1000)
                .unwrap(),
            None
        );
        assert_eq!(shadow_leaf(&slot, old_root, KVA + 0x1000) & W, W);
        // Remap to another frame: a new root; the old tables are untouched.
        put(&m, 0x4000 + 0x100 * 8, 0x12_0000 | P | W | D);
        let new_root = sh.sync_region(&slot, &m, View::Kernel, KVA).unwrap();
        assert_eq!(new_root, Some(sh.kernel_root));
        assert_ne!(sh.kernel_root, old_root);
        assert_eq!(shadow_leaf(&slot, sh.kernel_root, KVA) & FRAME, 0x12_0000);
        assert_eq!(shadow_leaf(&slot, old_root, KVA) & FRAME, 0x10_0000);
        assert_eq!(sh.path_copies, 1);
        // Unmapped: another path copy, the entry gone.
        put(&m, 0x4000 + 0x100 * 8, 0);
        sh.sync_region(&slot, &m, View::Kernel, KVA).unwrap();
        assert_eq!(shadow_leaf(&slot, sh.kernel_root, KVA), 0);
    }

    #[test]
    fn the_pool_runs_out_and_recycles() {
        let (m, slot, mut sh) = shadowed();
        let mut flip = 0x12_0000;
        let err = loop {
            put(&m, 0x4000 + 0x100 * 8, flip | P | W | D);
            flip ^= 0x1000;
            sh.fill(&slot, &m, View::Kernel, KVA).unwrap();
            if let Err(e) = sh.sync_region(&slot, &m, View::Kernel, KVA) {
                break e;
            }
        };
        assert!(matches!(err, ShadowError::PoolFull(_)), "{err}");
        assert!(!sh.has_room(Shadow::RESERVE));
        assert!(
            sh.reset(&slot, TABLES_PAGING, false).unwrap(),
            "more than half used: recycled"
        );
        assert!(sh.has_room(R_POOL.size / 0x1000 - 4));
        sh.fill(&slot, &m, View::Kernel, KVA).unwrap();
        assert_eq!(
            shadow_leaf(&slot, sh.kernel_root, KVA) & FRAME,
            flip ^ 0x1000
        );
    }
}
