"""The package's layers: each module imports only modules of its own layer or of the layers before it, there is
no import cycle, and a function imports the package's own modules only where start-up time needs it."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hexadd"
# Bottom to top. modeling/ ships with the weights and imports nothing of the package, so everything may use it;
# hub/download.py sits low (data and inference download), the rest of hub/ publishes and nothing imports it.
LAYERS = ["common", "hub.download", "modeling", "config", "plots", "data", "inference", "verify", "train",
          "experiments", "hub"]
# Function-level imports of the package's own modules, each with why it waits: torch and transformers take seconds
# to import, and a command line refuses a bad argument or config before it pays for them.
HEAVY = "lengthgen.py checks its config and folders before torch and transformers load"
LATE = {
    ("experiments.lengthgen", "data.tokenizer"): HEAVY, ("experiments.lengthgen", "train.loop"): HEAVY,
    ("experiments.lengthgen", "verify.grids"): HEAVY, ("experiments.lengthgen", "inference.loading"): HEAVY,
    ("experiments.lengthgen", "verify"): HEAVY, ("experiments.lengthgen", "verify.certify"): HEAVY,
    ("experiments.lengthgen", "verify.bands"): HEAVY, ("experiments.lengthgen", "plots"): "matplotlib: " + HEAVY,
    ("hub.publish", "inference.loading"): "`python -m hexadd.hub` checks the repo id and the token before transformers loads",
    ("inference.loading", "inference.reference"): "a missing or incomplete model folder is refused before torch loads",
    ("inference.loading", "modeling.model"): "a missing or incomplete model folder is refused before torch loads",
}


def layer(module: str) -> int:
    """The rank of `module` (dotted, without hexadd.)."""
    ranks = [rank for rank, name in enumerate(LAYERS) if module == name or module.startswith(name + ".")]
    if ranks:  # the most specific name: hub.download before hub
        return max(ranks, key=lambda rank: len(LAYERS[rank]))
    raise AssertionError(f"hexadd.{module} is in no layer; add its folder to LAYERS")


def own_imports(path: Path):
    """(imported module, line, at module level?) for every import of the package's own modules in `path`."""
    module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("hexadd")):
            if node.level:
                base = package.split(".") if "." in module else []
                base = base[:len(base) - node.level + 1] if node.level > 1 else base
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module.removeprefix("hexadd").lstrip(".")
            names = [target] if node.module else [f"{target}.{a.name}".lstrip(".") for a in node.names]
            for name in names:
                yield name, node.lineno, id(node) in top


def modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name not in ("__init__.py", "__main__.py"))


def test_every_module_imports_only_its_own_layer_or_lower():
    wrong = []
    for path in modules():
        here = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        for target, line, _ in own_imports(path):
            if (PACKAGE / (target.replace(".", "/") + ".py")).is_file() or (PACKAGE / target.replace(".", "/")).is_dir():
                if layer(target) > layer(here):
                    wrong.append(f"hexadd.{here}:{line} imports hexadd.{target} ({LAYERS[layer(target)]} is above {LAYERS[layer(here)]})")
    assert not wrong, "\n".join(wrong)


def test_no_function_imports_the_package_unless_listed():
    late = {(".".join(p.relative_to(PACKAGE).with_suffix("").parts), target.rsplit(".", 1)[0]
             if (PACKAGE / (target.rsplit(".", 1)[0].replace(".", "/") + ".py")).is_file() else target)
            for p in modules() for target, line, at_top in own_imports(p) if not at_top}
    assert late == set(LATE), f"unlisted: {sorted(late - set(LATE))}; listed but gone: {sorted(set(LATE) - late)}"


def test_files_shipped_with_the_weights_import_only_each_other():
    """modeling/ travels with published weights (trust_remote_code): nothing else of the package may be needed."""
    for path in (PACKAGE / "modeling").glob("*.py"):
        for target, line, _ in own_imports(path):
            assert target.startswith("modeling."), f"{path.name}:{line} imports hexadd.{target}"
            assert (PACKAGE / "modeling" / (target.split(".")[1] + ".py")).is_file()
