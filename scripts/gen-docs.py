#!/usr/bin/env python3
"""Generates completions/ and man/imctl.1 from imctl's command definitions, or checks they are current.

The completion scripts are swift-argument-parser's own (`imctl --generate-completion-script SHELL`).
The man page is rendered from `imctl --experimental-dump-help` (the same description of every command,
option, default and value list that --help prints) into scripts/imctl.1.in, which holds the prose
sections (DESCRIPTION, ENVIRONMENT, FILES, EXIT STATUS, EXAMPLES, SEE ALSO).

usage: scripts/gen-docs.py [--imctl PATH] [--check] [--dump FILE]
  --imctl   the built binary (default: .build/debug/imctl, else .build/release/imctl)
  --check   write nothing; list the files that differ from what would be generated, exit 1 if any
  --dump    read the command description from FILE instead of running the binary (for tests)
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPLETIONS = {"bash": "completions/imctl.bash", "zsh": "completions/_imctl", "fish": "completions/imctl.fish"}
MAN = "man/imctl.1"
TEMPLATE = os.path.join(ROOT, "scripts", "imctl.1.in")
# Every command takes these; the man page says so once instead of under each command.
COMMON = {"help", "version"}


def roff(text):
    """Escapes text for roff: backslashes, hyphens (so they stay ASCII), leading control characters."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    # Anything beyond ASCII as a groff glyph by code point, so the page needs no input encoding.
    text = "".join(c if ord(c) < 128 else "\\[u%04X]" % ord(c) for c in text)
    lines = []
    for line in text.split("\n"):
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def names(arg):
    return [("-" if n["kind"] == "short" else "--") + n["name"] for n in arg.get("names", [])]


def is_common(arg):
    return arg.get("preferredName", {}).get("name") in COMMON and arg["kind"] == "flag"


def visible(cmd):
    return [a for a in cmd.get("arguments", []) if a.get("shouldDisplay", True) and not is_common(a)]


def synopsis_item(arg):
    """One argument as the usage line writes it: [--flag], --opt <v>, [<positional> ...]."""
    if arg["kind"] == "positional":
        item = "\\fI%s\\fR" % roff(arg["valueName"])
    else:
        item = "\\fB%s\\fR" % roff(names(arg)[-1])
        if arg["kind"] == "option":
            item += " \\fI%s\\fR" % roff(arg["valueName"])
    if arg.get("isRepeating"):
        item += " ..."
    return "[%s]" % item if arg.get("isOptional") else item


def leaves(cmd, path):
    """(path, command) of every runnable command, depth first, skipping `help`."""
    subs = [s for s in cmd.get("subcommands", []) if s["commandName"] != "help" and s.get("shouldDisplay", True)]
    if not subs:
        yield path, cmd
        return
    for s in subs:
        yield from leaves(s, path + [s["commandName"]])


def synopsis(root):
    out = []
    for path, cmd in leaves(root, ["imctl"]):
        out.append(".SY \"%s\"" % " ".join(path))
        for a in visible(cmd):
            out.append(synopsis_item(a))
        out.append(".YS")
    return "\n".join(out)


def option_entry(arg):
    if arg["kind"] == "positional":
        head = "\\fI%s\\fR" % roff(arg["valueName"])
        if arg.get("isRepeating"):
            head += " ..."
    else:
        head = ", ".join("\\fB%s\\fR" % roff(n) for n in names(arg))
        if arg["kind"] == "option":
            head += " \\fI%s\\fR" % roff(arg["valueName"])
    text = roff(arg.get("abstract", "")).strip()
    if arg.get("allValues"):
        text += " One of: %s." % ", ".join("\\fB%s\\fR" % roff(v) for v in arg["allValues"])
    if "defaultValue" in arg and arg["kind"] == "option":
        text += " Default: %s." % roff(arg["defaultValue"])
    if arg.get("isRepeating") and arg["kind"] == "option":
        text += " May be given more than once."
    return ".TP\n%s\n%s" % (head, text)


def commands(root):
    out = []
    def walk(cmd, path):
        subs = [s for s in cmd.get("subcommands", []) if s["commandName"] != "help" and s.get("shouldDisplay", True)]
        if path != ["imctl"]:
            out.append(".SS \"%s\"" % " ".join(path))
            out.append(roff(cmd.get("abstract", "")))
            if cmd.get("discussion"):
                for para in cmd["discussion"].strip().split("\n\n"):
                    out.append(".PP")
                    out.append(roff(para.strip()))
            args = visible(cmd)
            out.extend(option_entry(a) for a in args)
        for s in subs:
            walk(s, path + [s["commandName"]])
    walk(root, ["imctl"])
    return "\n".join(out)


def manual(dump, version):
    root = dump["command"]
    with open(TEMPLATE) as f:
        text = f.read()
    return (text.replace("@VERSION@", roff(version))
                .replace("@ABSTRACT@", roff(root.get("abstract", "")))
                .replace("@SYNOPSIS@", synopsis(root))
                .replace("@COMMANDS@", commands(root)))


def run(binary, *args):
    return subprocess.run([binary, *args], check=True, capture_output=True, text=True).stdout


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--imctl")
    p.add_argument("--check", action="store_true")
    p.add_argument("--dump")
    opts = p.parse_args()
    binary = opts.imctl
    if binary is None:
        for candidate in (".build/debug/imctl", ".build/release/imctl"):
            if os.access(os.path.join(ROOT, candidate), os.X_OK):
                binary = os.path.join(ROOT, candidate)
                break
    if binary is None:
        sys.exit("gen-docs: no built imctl; run `swift build` first or pass --imctl PATH")

    if opts.dump:
        with open(opts.dump) as f:
            dump = json.load(f)
    else:
        dump = json.loads(run(binary, "--experimental-dump-help"))
    version = run(binary, "--version").strip()
    wanted = {path: run(binary, "--generate-completion-script", shell) for shell, path in COMPLETIONS.items()}
    wanted[MAN] = manual(dump, version)

    stale = []
    for path, content in wanted.items():
        full = os.path.join(ROOT, path)
        try:
            with open(full) as f:
                current = f.read()
        except FileNotFoundError:
            current = None
        if current == content:
            continue
        stale.append(path)
        if not opts.check:
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w") as f:
                f.write(content)
    if opts.check:
        if stale:
            print("gen-docs: out of date (run scripts/gen-docs.py): " + ", ".join(stale), file=sys.stderr)
            sys.exit(1)
        print("gen-docs: completions and man page are current")
    else:
        print("gen-docs: wrote " + (", ".join(stale) if stale else "nothing (all current)"))


if __name__ == "__main__":
    main()
