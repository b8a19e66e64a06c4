/* A large function (several KiB of code) so that line, range and location deltas need
 * multi-byte LEB128 and DW_CFA_advance_loc2 after padding. */
extern void sink(long);
#define STEP(i) do { acc = acc * 31 + (long)p[(i) % 97] * (i); if (acc & (1L << ((i) % 40))) sink(acc ^ (i)); } while (0)
#define STEP10(b) STEP(b); STEP(b+1); STEP(b+2); STEP(b+3); STEP(b+4); STEP(b+5); STEP(b+6); STEP(b+7); STEP(b+8); STEP(b+9)
#define STEP100(b) STEP10(b); STEP10(b+10); STEP10(b+20); STEP10(b+30); STEP10(b+40); STEP10(b+50); STEP10(b+60); STEP10(b+70); STEP10(b+80); STEP10(b+90)

long big(const int *p, long seed)
{
	long acc = seed;
	long saved[8];
	for (int k = 0; k < 8; k++)
		saved[k] = acc + k;
	STEP100(0);
	asm volatile("cli" ::: "memory");
	STEP100(100);
	asm volatile("sti" ::: "memory");
	STEP100(200);
	for (int k = 0; k < 8; k++)
		acc ^= saved[k];
	return acc;
}

long small(long x) { return x * 7 + 1; }
