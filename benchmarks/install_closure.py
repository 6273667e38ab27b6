"""What an application pays to install and load a packaged model: the install
closure (packages, MiB), `import spacy; spacy.load(MODEL)` and
`import spacy; spacy.blank("en")` seconds and the RSS after loading, in bare
virtualenvs side by side, alternating environments on every run.

Environments (each: a virtualenv without system site-packages, `torch==TORCH`
installed first, as an application picks its own torch build):
- `old`: `--old-component` (a spacy-pos-ner wheel, with its dependencies), then
  the model wheel from `--wheels` without dependencies;
- `new`: `pip install --find-links WHEELS MODEL`, the model card's command;
- `plain`: spacy-transformers alone (the versions `new` got), loading `--plain`, a
  pipeline with the same encoder and tagger and no pos_ner (`plain-pipeline`
  writes one from a trained model).

    python -m benchmarks.install_closure plain-pipeline training/pos_ner/model-best /tmp/plain
    python -m benchmarks.install_closure measure en_ner_pos_conll --wheels packages/wheels \\
        --old-component old/spacy_pos_ner-0.1.0-py3-none-any.whl --plain /tmp/plain \\
        --work /tmp/closure --output benchmarks/results/install_closure.json
"""

import json
import platform
import re
import statistics
import subprocess
import sys
import venv
from datetime import date
from pathlib import Path
from typing import Dict, List, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)

TIMED = """
import json, time
start = time.perf_counter()
import spacy
nlp = {load}
seconds = time.perf_counter() - start
rss = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:"))
print(json.dumps({{"seconds": seconds, "rss_mib": rss / 1024, "pipeline": nlp.pipe_names}}))
"""
INSTALLED = """
import json
from importlib.metadata import distributions
print(json.dumps(sorted({d.metadata["Name"].lower().replace("_", "-") for d in distributions()} - {"pip"})))
"""


def run(command: List[str], **kwargs) -> str:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result.stdout


def make_env(path: Path, torch: str) -> Path:
    venv.create(path, with_pip=True, clear=True)
    python = path / "bin" / "python"
    run([str(python), "-m", "pip", "install", "--quiet", f"torch=={torch}"])
    return python


def site_packages(python: Path) -> Path:
    return Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())


def mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


def closure(python: Path) -> Dict:
    site = site_packages(python)
    torch_dirs = [p for p in site.iterdir() if re.match(r"(torch|nvidia|triton)", p.name)]
    total = mib(site)
    torch_mib = sum(mib(p) for p in torch_dirs)
    packages = json.loads(run([str(python), "-c", INSTALLED]))
    return {"packages": packages, "n_packages": len(packages), "mib": total, "mib_without_torch": total - torch_mib}


def timed(python: Path, load: str) -> Dict:
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": str(python.parent)}
    return json.loads(run([str(python), "-c", TIMED.format(load=load)], env=env, cwd="/").splitlines()[-1])


@app.command("plain-pipeline")
def plain_pipeline(model: Path, output: Path) -> None:
    """Write MODEL without its `ner` and with spacy-transformers' own architecture
    and span getter to OUTPUT: the same encoder and tagger weights, no pos_ner."""
    import spacy

    spacy.load(model, exclude=["ner"]).to_disk(output)
    config = (output / "config.cfg").read_text(encoding="utf8")
    config = config.replace('"pos_ner.TransformerModel.v1"', '"spacy-transformers.TransformerModel.v3"')
    config = re.sub(r"\nmax_group_wordpieces = \d+", "", config)
    config = config.replace('"pos_ner.wordpiece_windows.v1"', '"spacy-transformers.strided_spans.v1"')
    config = re.sub(r"\nwindow = 160\nstride = 120\nsentences = \w+", "\nwindow = 128\nstride = 96", config)
    config = config.replace('"pos_ner.Corpus.v1"', '"spacy.Corpus.v1"')
    config = re.sub(r"\nmax_doc_tokens = \d+", "", config)
    config = config.replace('"pos_ner.warmup_linear.v1"', '"warmup_linear.v1"')
    registered = [line for line in config.splitlines() if line.startswith("@") and "pos_ner" in line]
    assert not registered, registered
    (output / "config.cfg").write_text(config, encoding="utf8")
    typer.echo(f"{output}: {spacy.load(output).pipe_names}")


@app.command("measure")
def measure(
    model: str = typer.Argument(..., help="The model package's name (e.g. en_ner_pos_conll)"),
    wheels: Path = typer.Option(..., help="packages/wheels: the model's wheel and spacy-pos-ner's"),
    old_component: Path = typer.Option(..., help="The spacy-pos-ner wheel to compare with"),
    plain: Path = typer.Option(..., help="plain-pipeline's output"),
    work: Path = typer.Option(..., help="Where the virtualenvs go"),
    output: Path = typer.Option(..., help="JSON to write"),
    runs: int = typer.Option(5, min=1),
    torch: str = typer.Option("2.13.0"),
    reuse: bool = typer.Option(False, help="Keep virtualenvs that exist in WORK"),
) -> None:
    wheels = wheels.resolve()
    model_wheel = max(wheels.glob(f"{model}-*.whl"))
    pythons: Dict[str, Path] = {}
    for name in ("old", "new", "plain"):
        python = work / name / "bin" / "python"
        if not (reuse and python.exists()):
            python = make_env(work / name, torch)
            if name == "old":
                run([str(python), "-m", "pip", "install", "--quiet", str(old_component)])
                run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(model_wheel)])
            elif name == "new":
                run([str(python), "-m", "pip", "install", "--quiet", "--find-links", str(wheels), model])
            else:
                pins = run([str(pythons["new"]), "-m", "pip", "freeze"]).splitlines()
                same = {"spacy", "spacy-transformers", "transformers", "thinc"}
                wanted = [line for line in pins if line.split("==")[0].lower() in same]
                run([str(python), "-m", "pip", "install", "--quiet", *wanted])
        pythons[name] = python
    result: Dict = {"date": date.today().isoformat(), "machine": platform.platform(), "runs": runs, "envs": {}}
    loads = {"old": f"spacy.load({model!r})", "new": f"spacy.load({model!r})", "plain": f"spacy.load({str(plain)!r})"}
    samples: Dict[str, Dict[str, List]] = {name: {"load": [], "blank": [], "rss": []} for name in pythons}
    for _ in range(runs):
        for name, python in pythons.items():
            loaded = timed(python, loads[name])
            samples[name]["load"].append(loaded["seconds"])
            samples[name]["rss"].append(loaded["rss_mib"])
            samples[name]["blank"].append(timed(python, 'spacy.blank("en")')["seconds"])
    for name, python in pythons.items():
        result["envs"][name] = {
            **closure(python),
            "load_s": statistics.median(samples[name]["load"]),
            "blank_s": statistics.median(samples[name]["blank"]),
            "rss_mib": statistics.median(samples[name]["rss"]),
            "samples": samples[name],
        }
    envs = result["envs"]
    base = set(envs["plain"]["packages"])
    for name in ("old", "new"):
        envs[name]["beyond_spacy_transformers"] = sorted(set(envs[name]["packages"]) - base)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf8")
    print_table(result)


def print_table(result: Dict, file: Optional[object] = None) -> None:
    envs = result["envs"]
    plain_load = envs["plain"]["load_s"]
    rows = [
        "| environment | packages | beyond spacy-transformers | MiB | MiB without torch | spacy.load s | × plain "
        "| spacy.blank s | RSS after load MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, env in envs.items():
        beyond = len(env.get("beyond_spacy_transformers", []))
        rows.append(
            f"| {name} | {env['n_packages']} | {beyond} | {env['mib']:,.0f} | {env['mib_without_torch']:,.0f} "
            f"| {env['load_s']:.2f} | {env['load_s'] / plain_load:.2f} | {env['blank_s']:.2f} | {env['rss_mib']:,.0f} |"
        )
    print("\n".join(rows), file=file or sys.stdout)
    for name in ("old", "new"):
        print(f"{name} beyond spacy-transformers: {', '.join(envs[name]['beyond_spacy_transformers'])}")


if __name__ == "__main__":
    app()
