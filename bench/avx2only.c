/* An x86-64 CPU that says it has AVX2 and nothing wider, for every library in the process.
 *
 * Loaded with LD_PRELOAD. It turns on CPUID faulting (Linux arch_prctl ARCH_SET_CPUID, the CPU flag
 * "cpuid_fault"), so every CPUID instruction traps; the SIGSEGV handler runs the real CPUID and clears
 * the AVX-512, AMX and AVX-VNNI bits before the program sees them. onnxruntime (MLAS), oneDNN, ATen,
 * OpenCV, x264 and numpy then choose their AVX2 kernels, as on a CPU that has no more. The flag is kept
 * across fork and threads; exec resets it, and LD_PRELOAD sets it again in the new program.
 * glibc's own choices are made before any library loads: GLIBC_TUNABLES holds those (see bench/avx2only.py).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>
#include <asm/prctl.h>

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);

static struct sigaction chained;   /* the handler the program asked for, called for real faults */
static volatile long trapped;      /* CPUID instructions emulated, for AVX2ONLY_REPORT */

static int set_cpuid(int enabled) { return (int)syscall(SYS_arch_prctl, ARCH_SET_CPUID, enabled); }

static void mask(uint32_t leaf, uint32_t sub, uint32_t r[4]) {  /* r: eax, ebx, ecx, edx */
    if (leaf == 7 && sub == 0) {
        r[1] &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) |
                  (1u << 30) | (1u << 31));                          /* avx512 f dq ifma pf er cd bw vl */
        r[2] &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
                                                                      /* vbmi vbmi2 vnni bitalg vpopcntdq */
        r[3] &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25));
                                                       /* 4vnniw 4fmaps vp2intersect amx-bf16 fp16 amx */
    } else if (leaf == 7 && sub == 1) {
        r[0] &= ~((1u << 4) | (1u << 5) | (1u << 21) | (1u << 23));  /* avx-vnni avx512-bf16 amx-fp16 ifma */
    } else if (leaf == 0xD && sub == 0) {
        r[0] &= ~((1u << 5) | (1u << 6) | (1u << 7) | (1u << 17) | (1u << 18));  /* opmask zmm tile state */
    }
}

static void on_segv(int sig, siginfo_t *info, void *uc_) {
    ucontext_t *uc = uc_;
    greg_t *g = uc->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)g[REG_RIP];
    if (info->si_code == SI_KERNEL && ip[0] == 0x0F && ip[1] == 0xA2) {
        uint32_t r[4], leaf = (uint32_t)g[REG_RAX], sub = (uint32_t)g[REG_RCX];
        set_cpuid(1);
        __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
        set_cpuid(0);
        mask(leaf, sub, r);
        g[REG_RAX] = r[0]; g[REG_RBX] = r[1]; g[REG_RCX] = r[2]; g[REG_RDX] = r[3];
        g[REG_RIP] += 2;
        trapped++;
        return;
    }
    if (chained.sa_flags & SA_SIGINFO && chained.sa_sigaction) {
        chained.sa_sigaction(sig, info, uc_);
    } else if (chained.sa_handler != SIG_DFL && chained.sa_handler != SIG_IGN && chained.sa_handler) {
        chained.sa_handler(sig);
    } else {  /* a real fault: die of it as the program would have */
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        sigemptyset(&dfl.sa_mask);
        ((sigaction_fn)dlsym(RTLD_NEXT, "sigaction"))(SIGSEGV, &dfl, NULL);
    }
}

/* A program that installs its own SIGSEGV handler (Python's faulthandler, a JIT) gets it chained
 * behind this one instead of replacing it. */
int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    static sigaction_fn real;
    if (!real) real = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
    if (sig != SIGSEGV) return real(sig, act, old);
    if (old) *old = chained;
    if (act) chained = *act;
    return 0;
}

sighandler_t signal(int sig, sighandler_t handler) {
    struct sigaction act = {.sa_handler = handler}, old;
    sigemptyset(&act.sa_mask);
    act.sa_flags = SA_RESTART;
    if (sigaction(sig, &act, &old) != 0) return SIG_ERR;
    return old.sa_handler;
}

static void report(void) {
    if (getenv("AVX2ONLY_REPORT")) {  /* at exit; a process that leaves by _exit says only its start */
        char line[96];
        int n = snprintf(line, sizeof line, "avx2only: %ld CPUID instructions masked in pid %d\n",
                         (long)trapped, (int)getpid());
        if (n > 0) (void)!write(2, line, (size_t)n);
    }
}

__attribute__((constructor)) static void start(void) {
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_sigaction = on_segv;
    act.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&act.sa_mask);
    chained.sa_handler = SIG_DFL;
    ((sigaction_fn)dlsym(RTLD_NEXT, "sigaction"))(SIGSEGV, &act, NULL);
    if (set_cpuid(0) != 0) {
        static const char msg[] = "avx2only: this CPU or kernel cannot fault on CPUID; nothing is masked\n";
        (void)!write(2, msg, sizeof msg - 1);
        _exit(2);
    }
    if (getenv("AVX2ONLY_REPORT")) {
        static const char msg[] = "avx2only: a process starts seeing an AVX2-only CPU\n";
        (void)!write(2, msg, sizeof msg - 1);
    }
    atexit(report);
}
