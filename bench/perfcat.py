#!/usr/bin/env python3
"""CPU-seconds per stage from a perf record of the server: each category's share
of the samples times the CPU-s the server used in that run (bench/cpu prints it)."""
import re, subprocess, sys, collections
# usage: perfcat.py perf.data CPU_SECONDS
out = subprocess.run(["perf", "report", "-i", sys.argv[1], "--no-children", "--sort", "dso,sym", "--stdio", "-g", "none"],
                     capture_output=True, text=True).stdout
cpu = float(sys.argv[2]); cats = collections.Counter()
for line in out.splitlines():
    m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)", line)
    if not m: continue
    pct, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4)
    if "sha2::" in sym: c = "hash (SHA-256)"
    elif re.search(r"aes::|ctr::|polyval|ghash|universal_hash|aes_gcm|hybrid_array|cipher::", sym): c = "encrypt (AES-256-GCM)"
    elif re.search(r"memmove|memcpy|memset", sym): c = "copy (memcpy, user)"
    elif re.search(r"memchr|multer", sym): c = "parse (multipart)"
    elif re.search(r"copy_folio_from_iter|filemap|folio|ext4|shmem|clear_page|generic_perform_write|balance_dirty", sym): c = "write: page cache (kernel)"
    elif re.search(r"iowrite|gup_|blk_|virtqueue|dio|iomap|bio_", sym): c = "write: direct I/O submission (kernel)"
    elif re.search(r"tcp|_copy_to_iter|_copy_from_iter|skb|softirq|net_rx|sock|__napi|ip_", sym): c = "network (kernel)"
    elif re.search(r"finish_task_switch|schedule|futex|spin_unlock|spin_lock|try_to_wake|wake_up|eventfd|epoll|irqentry|exit_to_user", sym): c = "scheduling, wake-ups (kernel)"
    elif kind == "k": c = "other (kernel)"
    else: c = "other (user: tokio, hyper, malloc, ...)"
    cats[c] += pct
tot = sum(cats.values())
for c, p in sorted(cats.items(), key=lambda x: -x[1]):
    print(f"| {c} | {p/tot*cpu:.2f} | {100*p/tot:.0f} % |")
