"""Turns the code a device ran into the library's link order (issue 18).

    python3 scripts/link_order.py MAP TRACE@BASE... > ffi/link/x86_64-unknown-linux-gnu.order
    python3 scripts/link_order.py --check MAP ORDER

MAP: LLD's link map of the library (`NHC_LINK_MAP=FILE cargo build ...`).
TRACE: valgrind lackey's `--trace-superblocks=yes` output of a process, one
"SB <address>" line per superblock run (repeats allowed); BASE: the address
(hex) the library was loaded at in that process. Several traces are taken in
turn, each adding the functions the earlier ones did not run.

Prints one symbol per line, in the order the functions first ran: LLD
places the sections that define them at the start of `.text`, in that order,
so that what a device runs sits in a few pages instead of across the file.

--check: exits non-zero unless the library of MAP was linked in ORDER (the
functions it names that the build has come first in `.text`, in that order)
and the build still has at least 90 % of them (fewer: the order is stale,
after a rustc or Cargo.lock update; rerun scripts/link-order.sh).
"""

import bisect
import re
import sys
from typing import Dict, List, Optional, Tuple

# "     VMA      LMA     Size Align Out     In      Symbol": an input section
# is indented by 9 columns after the numbers, a symbol by 17.
LINE = re.compile(r"^\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+(\d+)( +)(.*)$")
SECTION = re.compile(r":\(\.text\.(?:unlikely\.|hot\.|startup\.|exit\.)?(.+)\)$")


def read_map(path: str) -> Tuple[List[int], List[int], List[Optional[str]]]:
    """Input sections of `.text`: their starts, sizes and symbols.

    rustc and cc put each function in its own section, `.text.<mangled
    name>`, and the map's symbol lines are demangled, so the name is taken
    from the section. Assembly (ring's) comes in one `.text` per object:
    that section is named by its first symbol, which moves it whole.
    """
    starts: List[int] = []
    sizes: List[int] = []
    names: List[Optional[str]] = []
    in_text = False
    first_symbol = False  # the next symbol line names the section before it
    with open(path, encoding="utf-8", errors="replace") as f:
        for raw in f:
            m = LINE.match(raw.rstrip("\n"))
            if not m:
                continue
            vma, size, _align, gap, rest = m.groups()
            # The column the name starts in says what the line is.
            depth = len(gap)
            if depth == 1:  # an output section
                in_text = rest.strip() == ".text"
                continue
            if not in_text:
                continue
            if depth > 9:  # a symbol line
                if first_symbol:
                    names[-1] = rest.strip()
                    first_symbol = False
                continue
            starts.append(int(vma, 16))
            sizes.append(int(size, 16))
            sec = SECTION.search(rest)
            names.append(sec.group(1) if sec else None)
            # crtbegin's `.text` (a `<internal>` or crt object) stays put.
            first_symbol = sec is None and rest.strip().endswith(":(.text)") and "/crt" not in rest
    if not starts:
        sys.exit(f"{path}: no .text input sections (not an LLD map?)")
    return starts, sizes, names


def check(map_path: str, order_path: str) -> None:
    _starts, sizes, names = read_map(map_path)
    with open(order_path, encoding="utf-8") as f:
        order = [line.strip() for line in f if line.strip()]
    # A static C function's name may be in several objects: each is moved.
    positions: Dict[str, List[int]] = {}
    for i, name in enumerate(names):
        if name:
            positions.setdefault(name, []).append(i)
    present = [name for name in order if name in positions]
    share = len(present) / len(order) if order else 0.0
    found = sorted({i for name in present for i in positions[name]})
    # Packed: the ordered functions are the first sections of `.text` (LLD
    # puts them ahead of crtbegin's).
    packed = found == list(range(len(found)))
    span = sum(sizes[i] for i in found)
    print(f"{len(present)} of {len(order)} ordered functions in the build ({100 * share:.1f} %), "
          f"{span} bytes at the start of .text: {'in order' if packed else 'NOT in order'}")
    if not packed:
        sys.exit("the link order was not applied (is the linker LLD? see ffi/build.rs)")
    if share < 0.9:
        sys.exit("the link order is stale: run scripts/link-order.sh")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--check":
        check(sys.argv[2], sys.argv[3])
        return
    if len(sys.argv) < 3 or any("@" not in a for a in sys.argv[2:]):
        sys.exit(__doc__)
    starts, sizes, names = read_map(sys.argv[1])
    seen: Dict[int, None] = {}
    order: List[str] = []
    for arg in sys.argv[2:]:
        trace, base_hex = arg.rsplit("@", 1)
        base = int(base_hex, 16)
        hits = 0
        with open(trace, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.startswith("SB "):
                    continue
                addr = int(line[3:].strip(), 16) - base
                i = bisect.bisect_right(starts, addr) - 1
                if i < 0 or addr >= starts[i] + sizes[i]:
                    continue  # another object's code, or padding
                hits += 1
                if i in seen:
                    continue
                seen[i] = None
                name = names[i]
                if name:
                    order.append(name)
        if hits == 0:
            sys.exit(f"{trace}: no superblock of the library (wrong base {base_hex}?)")
    if not order:
        sys.exit("no superblock of the library in the traces (wrong BASE?)")
    print("\n".join(order))
    total = sum(sizes)
    used = sum(sizes[i] for i in seen)
    print(
        f"{len(order)} functions, {used} of {total} bytes of .text "
        f"({100 * used / total:.1f} %)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
