#!/usr/bin/env python3
"""Where one delivered message's server CPU goes, by component, from a perf profile of stanzad.

  perf record -e cpu-clock -F 2000 --call-graph dwarf,16384 -p PID -o flood.data -- sleep 4
  perf script -i flood.data -F comm,tid,ip,sym,dso > flood.script
  tools/bench/perf_components.py flood.script

Each sample goes to the nearest (leaf-most) frame that names a component; malloc/free and
memcpy are charged to the component that called them (and counted apart); samples in the
kernel go to the system call they came from. docs/performance.md, "Where stanzad's time goes".
"""
import collections
import re
import sys

comps = [
  ("TLS (records, AES-GCM)", re.compile(r"Tls13Records|libcrypto|\bSSL_|ssl3_|tls13_|EVP_")),
  ("serialize", re.compile(r"stanzad::xml::serialize|xml::\(anonymous namespace\)::(escape|write_start)")),
  ("pipeline (hooks, plugins)", re.compile(r"HookRegistry|PluginManager|plugin::|libstanzad_|lua_|luaV_|luaH_|sz::")),
  ("route (router, JIDs)", re.compile(r"Router::|Jid::|stringprep|idn")),
  ("parse (expat, stanza tree)", re.compile(r"libexpat|StreamParser|xml::Element")),
  ("session (c2s read/write loop)", re.compile(r"C2SSession::")),
  ("asio scheduler, cross-shard posts", re.compile(r"boost::asio")),
]
alloc = re.compile(r"\b(malloc|_int_malloc|_int_free|cfree|free|operator new|operator delete|unlink_chunk|tcache|calloc|realloc|malloc_consolidate)\b")
def frames_of(block):
    out=[]
    for line in block[1:]:
        line=line.strip()
        if not line: continue
        parts=line.split(None,1)
        if len(parts)<2: continue
        out.append(parts[1])
    return out
blocks=[]; cur=[]
for line in open(sys.argv[1]):
    if line.strip()=="" :
        if cur: blocks.append(cur); cur=[]
    else: cur.append(line.rstrip("\n"))
if cur: blocks.append(cur)
tot=0; by=collections.Counter(); kern=collections.Counter(); allocs=collections.Counter(); alloc_total=0
for b in blocks:
    if not b[0].startswith("stanzad"): continue
    fr=frames_of(b)
    if not fr: continue
    tot+=1
    leaf_kernel = "kernel.kallsyms" in fr[0]
    is_alloc = any(alloc.search(f) for f in fr[:4] if "kernel" not in f)
    comp=None
    for f in fr:
        if "kernel.kallsyms" in f: continue
        for name,rx in comps:
            if rx.search(f): comp=name; break
        if comp: break
    if leaf_kernel:
        # which syscall
        sc="other kernel"
        for f in fr:
            if "kernel" in f: continue
            m=re.search(r"(epoll_wait|epoll_ctl|__libc_send|__send|__libc_recv|recv|sendmsg|write|read|futex|lll_lock)",f)
            if m: sc=m.group(1); break
        kern[sc]+=1
        by["kernel: "+("syscalls" if sc!="other kernel" else "interrupts, scheduling")]+=1
        continue
    if is_alloc:
        alloc_total+=1; allocs[comp or "other"]+=1
    by[comp or "other user space"]+=1
for k,v in by.most_common(): print(f"{100*v/tot:6.1f}%  {k}")
print("  kernel by syscall:", ", ".join(f"{k} {100*v/tot:.1f}%" for k,v in kern.most_common()))
print(f"  malloc/free inside the above: {100*alloc_total/tot:.1f}% ->", ", ".join(f"{k} {100*v/tot:.1f}%" for k,v in allocs.most_common()))
print("samples", tot)
