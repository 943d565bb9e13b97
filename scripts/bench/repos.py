"""The repositories the cases build: a bare git repository under the stack's git daemon with
an ocelot.yml of one stage running the case's script, registered with the admin."""

import json
import os
import subprocess
import tempfile

IMAGE = "ocelot/busybox"


def _git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def ocelot_yml(script):
    # a JSON string is a YAML scalar: no quoting rules of YAML to get wrong
    return f"image: {IMAGE}\nstages:\n  - name: bench\n    script:\n      - {json.dumps(script)}\n"


def create(stack, name, script, files=0):
    """Creates and registers repository NAME whose build runs SCRIPT; FILES more small files
    in directories of 100. Returns its git:// URL."""
    with tempfile.TemporaryDirectory(dir=stack.dir) as work:
        _git("init", "-q", "-b", "main", cwd=work)
        with open(os.path.join(work, "ocelot.yml"), "w") as f:
            f.write(ocelot_yml(script))
        for index in range(files):
            directory = os.path.join(work, "src", f"d{index // 100:04d}")
            if index % 100 == 0:
                os.makedirs(directory)
            with open(os.path.join(directory, f"f{index % 100:03d}.txt"), "w") as f:
                f.write(f"file {index}\n")
        _git("add", "-A", cwd=work)
        _git("-c", "user.name=bench", "-c", "user.email=bench@ocelot.local", "commit", "-q", "-m", name, cwd=work)
        _git("clone", "-q", "--bare", work, os.path.join(stack.git_root, f"{name}.git"), cwd=stack.dir)
    url = f"git://127.0.0.1:{stack.git_port}/{name}.git"
    subprocess.run(stack.cli("repos", "add", name, url), env=stack.cli_env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return url


def create_hooks_repo(stack):
    """A repository to send webhooks for (full name team/hooks); returns its webhook secret."""
    with tempfile.TemporaryDirectory(dir=stack.dir) as work:
        _git("init", "-q", "-b", "main", cwd=work)
        with open(os.path.join(work, "ocelot.yml"), "w") as f:
            f.write(ocelot_yml("echo hi"))
        _git("add", "-A", cwd=work)
        _git("-c", "user.name=bench", "-c", "user.email=bench@ocelot.local", "commit", "-q", "-m", "hooks", cwd=work)
        os.makedirs(os.path.join(stack.git_root, "team"), exist_ok=True)
        _git("clone", "-q", "--bare", work, os.path.join(stack.git_root, "team", "hooks.git"), cwd=stack.dir)
    url = f"git://127.0.0.1:{stack.git_port}/team/hooks.git"
    return subprocess.run(stack.cli("repos", "add", "team/hooks", url, "--hooks-url", f"http://127.0.0.1:{stack.hooks_port}"),
                          env=stack.cli_env, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True).stdout.strip()
