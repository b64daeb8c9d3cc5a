#!/usr/bin/env python3
"""masad's YANG schema check: does a module in yang/ define the same schema as the
published IETF module it renders?

  schema-check.py check YANGDIR MODULE.yang    compare with tests/yang/reference/
  schema-check.py print YANGDIR MODULE.yang    print MODULE's schema outline
  schema-check.py print-reference NAME.yin     print a reference's schema outline

A schema outline is one line per YANG statement, indented by nesting, in the
module's own order: the keyword (an extension's keyword as MODULE:NAME) and its
arguments. It comes from the YIN form of the module (yanglint from libyang2-tools
prints it; a reference is stored in that form) with the prose left out: the
statements whose argument is free text (description, reference, organization,
contact) go, and presence and error-message keep only their existence. So
descriptions are a rendition's own, while every node, type, constraint, default,
feature, extension, import and revision has to match the published module.

ietf-voucher-request has no reference (libyang 2.1.30 cannot compile the published
module): its voucher container is checked against ietf-voucher's reference with
RFC 8995's changes applied (tests/yang/README.md).

Exit status: 0 identical, 1 different, 2 usage or a module that does not compile.
"""
import copy
import difflib
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

YIN = "urn:ietf:params:xml:ns:yang:yin:1"
HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.path.join(HERE, "reference")

# Statements whose argument is prose: left out with everything under them.
PROSE = {"description", "reference", "organization", "contact"}
# Statements whose argument is prose but whose presence has a meaning.
EXISTENCE_ONLY = {"presence", "error-message"}
# In YIN the argument of a prose statement is an element, <text> (or <value>
# for error-message). Inside an extension instance (rc:yang-data, sx:structure)
# libyang 2.1.30 prints that element beside an empty <description/> instead of
# inside it, so such loose argument elements are prose wherever they appear.
PROSE_ARGUMENTS = {"text", "value"}


def split_tag(tag):
    """'{uri}name' -> (uri, name)."""
    uri, _, name = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    return uri, name


def keyword(el):
    uri, name = split_tag(el.tag)
    if uri == YIN:
        return name
    # an extension: name it by its module's namespace, not by a prefix
    return "%s:%s" % (uri.rsplit(":", 1)[-1], name)


def outline(el, depth=0, lines=None):
    """The schema of a YIN element as outline lines, prose left out."""
    lines = [] if lines is None else lines
    uri, name = split_tag(el.tag)
    if uri == YIN and (name in PROSE or name in PROSE_ARGUMENTS):
        return lines
    args = ["%s=%s" % (k, v) for k, v in sorted(el.attrib.items())]
    if uri == YIN and name in EXISTENCE_ONLY:
        lines.append("  " * depth + name + " (wording not compared)")
        return lines
    text = " ".join((el.text or "").split())
    if text:
        args.append(repr(text))
    lines.append("  " * depth + " ".join([keyword(el)] + args))
    for child in el:
        outline(child, depth + 1, lines)
    return lines


def compile_module(yangdir, path):
    """The YIN print of a module, as an element tree; exits 2 when it does not compile."""
    run = subprocess.run(["yanglint", "-p", yangdir, "-f", "yin", path],
                         capture_output=True, text=True)
    if run.returncode != 0 or not run.stdout.strip():
        sys.stderr.write("yanglint cannot compile %s:\n%s\n" % (path, run.stderr.strip()))
        sys.exit(2)
    return ET.fromstring(run.stdout)


def module_name(path):
    return os.path.basename(path).split("@")[0].split(".")[0]


def find(el, *steps):
    """The first descendant reached through (keyword, name) steps, or None."""
    for kw, name in steps:
        el = next((c for c in el if split_tag(c.tag) == (YIN, kw) and c.get("name") == name),
                  None)
        if el is None:
            return None
    return el


def voucher_request_expected():
    """RFC 8995 §3.3: the voucher request's container is ietf-voucher's voucher
    container with created-on, pinned-domain-cert and assertion no longer
    mandatory and two binary leaves added after the others."""
    voucher = ET.parse(os.path.join(REFERENCE, "ietf-voucher.yin")).getroot()
    container = copy.deepcopy(find(voucher, ("grouping", "voucher-artifact-grouping"),
                                   ("container", "voucher")))
    for leaf in ("created-on", "pinned-domain-cert", "assertion"):
        node = find(container, ("leaf", leaf))
        for m in node.findall("{%s}mandatory" % YIN):
            node.remove(m)
    for leaf in ("prior-signed-voucher-request", "proximity-registrar-cert"):
        node = ET.SubElement(container, "{%s}leaf" % YIN, name=leaf)
        ET.SubElement(node, "{%s}type" % YIN, name="binary")
    return container


def without_mandatory_false(el):
    """'mandatory false' is the default: the same schema as no statement."""
    for child in list(el):
        if split_tag(child.tag) == (YIN, "mandatory") and child.get("value") == "false":
            el.remove(child)
        else:
            without_mandatory_false(child)
    return el


def voucher_request_outlines(mine):
    """(expected, actual) outlines of what ietf-voucher-request must state."""
    header = ["yang-version value=1.1",
              "namespace uri=urn:ietf:params:xml:ns:yang:ietf-voucher-request",
              "prefix value=vcr", "revision date=2021-05-20",
              "yang-data: ietf-restconf:name 'voucher-request-artifact'",
              "yang-data: uses name=voucher-request-grouping"]
    got = []
    for child in mine:
        line = outline(child)
        if not line:
            continue
        if keyword(child) in ("yang-version", "namespace", "prefix", "revision"):
            got.append(line[0])
        elif keyword(child) == "ietf-restconf:yang-data":
            got += ["yang-data: " + l.strip() for l in line[1:]]
    container = find(mine, ("grouping", "voucher-request-grouping"), ("container", "voucher"))
    got += ["(no container voucher in grouping voucher-request-grouping)"] if container is None \
        else outline(without_mandatory_false(container))
    want = header + outline(without_mandatory_false(voucher_request_expected()))
    return want, got


def check(yangdir, path):
    name = module_name(path)
    mine = compile_module(yangdir, path)
    if name == "ietf-voucher-request":
        want, got = voucher_request_outlines(mine)
        source = "RFC 8995 applied to ietf-voucher"
    else:
        ref_path = os.path.join(REFERENCE, name + ".yin")
        if not os.path.exists(ref_path):
            sys.stderr.write("no reference schema %s\n" % ref_path)
            return 2
        want, got = outline(ET.parse(ref_path).getroot()), outline(mine)
        source = "published"
    if want == got:
        print("%s: schema identical" % name)
        return 0
    print("%s: SCHEMA DIFFERS (- %s, + yang/)" % (name, source))
    for line in difflib.unified_diff(want, got, lineterm="", n=2):
        if not line.startswith(("---", "+++")):
            print(line)
    return 1


def main(argv):
    if len(argv) == 4 and argv[1] == "check":
        return check(argv[2], argv[3])
    if len(argv) == 4 and argv[1] == "print":
        print("\n".join(outline(compile_module(argv[2], argv[3]))))
        return 0
    if len(argv) == 3 and argv[1] == "print-reference":
        print("\n".join(outline(ET.parse(argv[2]).getroot())))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
