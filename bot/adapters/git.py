"""All git goes through here (GitPython). Branches are built in temporary worktrees, so the
user's working tree is never touched; failures name the command and git's own message."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from git import GitCommandError, InvalidGitRepositoryError, NoSuchPathError, Repo

from bot.adapters.store import atomic_write_text
from bot.errors import ForgeError
from bot.secrets import redact

BOT_NAME = "chronops[bot]"
BOT_EMAIL = "chronops-bot@users.noreply.github.com"


def _fail(exc: GitCommandError, what: str) -> ForgeError:
    stderr = (exc.stderr or "").strip().replace("\n", " ")
    stderr = stderr.removeprefix("stderr: ").strip("'\" ")
    return ForgeError(redact(f"git {what} failed: {stderr or exc}"))  # git echoes remote URLs


@dataclass
class GitRepo:
    root: Path
    remote: str = "origin"
    # Extra environment for every git command (e.g. GIT_CONFIG_* carrying an auth header); may hold
    # secrets, so it is kept out of repr and never written to disk.
    env: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, root: Path, remote: str = "origin") -> GitRepo:
        try:
            Repo(root)
        except (InvalidGitRepositoryError, NoSuchPathError):
            raise ForgeError(
                f"{root}: not a git repository (run `git init` and add an '{remote}' remote, or use --dry-run plan)"
            ) from None
        repo = cls(root, remote)
        if remote not in [r.name for r in repo.repo.remotes]:
            raise ForgeError(f"{root}: git remote '{remote}' not found (add it: git remote add {remote} URL)")
        return repo

    @property
    def repo(self) -> Repo:
        return Repo(self.root)

    def git(self, *args: str, cwd: Path | None = None) -> str:
        repo = Repo(cwd) if cwd else self.repo
        try:
            out: str = repo.git.execute(["git", *args], env={**_bot_env(), **self.env})
        except GitCommandError as exc:
            raise _fail(exc, " ".join(args[:2])) from None
        return out

    def fetch(self) -> None:
        self.git("fetch", "--prune", self.remote)

    def remote_sha(self, branch: str) -> str | None:
        try:
            return self.git("rev-parse", "--verify", "--quiet", f"refs/remotes/{self.remote}/{branch}")
        except ForgeError:
            return None

    def tree_of(self, rev: str) -> str:
        return self.git("rev-parse", f"{rev}^{{tree}}")

    def show_file(self, rev: str, path: str) -> str | None:
        try:
            return self.git("show", f"{rev}:{path}")
        except ForgeError:
            return None

    @contextlib.contextmanager
    def worktree(self, rev: str) -> Iterator[Path]:
        """A detached temporary worktree at `rev`, removed afterwards whatever happens."""
        tmp = Path(tempfile.mkdtemp(prefix="chronops-wt-"))
        path = tmp / "wt"
        self.git("worktree", "add", "--detach", str(path), rev)
        try:
            yield path
        finally:
            with contextlib.suppress(ForgeError):
                self.git("worktree", "remove", "--force", str(path))
            shutil.rmtree(tmp, ignore_errors=True)
            with contextlib.suppress(ForgeError):
                self.git("worktree", "prune")

    def commit_files(self, base: str, files: dict[str, str], message: str) -> str | None:
        """Commit `files` on top of `base` in a worktree; returns the new sha (None if nothing changed)."""
        with self.worktree(base) as wt:
            for rel, text in files.items():
                atomic_write_text(wt / rel, text)
            self.git("add", "--", *files.keys(), cwd=wt)
            if not self.git("status", "--porcelain", cwd=wt).strip():
                return None
            self.git("commit", "--no-gpg-sign", "-m", message, cwd=wt)
            return self.git("rev-parse", "HEAD", cwd=wt)

    def push(self, sha: str, branch: str, *, force: bool = False) -> None:
        args = ["push", self.remote, f"{sha}:refs/heads/{branch}"]
        if force:
            args.insert(1, "--force")
        self.git(*args)

    def delete_remote_branch(self, branch: str) -> None:
        with contextlib.suppress(ForgeError):
            self.git("push", self.remote, "--delete", branch)

    def merge_into(self, base: str, head: str, message: str) -> str:
        """A --no-ff merge commit of `head` into `base` (remote branch names), pushed; returns its sha."""
        with self.worktree(f"{self.remote}/{base}") as wt:
            self.git("merge", "--no-ff", "--no-gpg-sign", "-m", message, f"{self.remote}/{head}", cwd=wt)
            sha = self.git("rev-parse", "HEAD", cwd=wt)
        self.push(sha, base)
        self.fetch()
        return sha

    def revert_commit(self, base: str, merge_sha: str, message: str) -> str:
        """A commit on top of `base` that reverts merge `merge_sha` (mainline 1). Never rewrites history."""
        with self.worktree(f"{self.remote}/{base}") as wt:
            parents = self.git("rev-list", "--parents", "-n", "1", merge_sha, cwd=wt).split()
            args = ["revert", "--no-edit", "--no-commit"]
            if len(parents) > 2:
                args += ["-m", "1"]
            self.git(*args, merge_sha, cwd=wt)
            self.git("commit", "--no-gpg-sign", "-m", message, cwd=wt)
            return self.git("rev-parse", "HEAD", cwd=wt)

    def sync_local_branch(self, branch: str) -> bool:
        """Fast-forward the checked-out `branch` to the remote when the working tree is clean."""
        repo = self.repo
        try:
            if (
                repo.head.is_detached
                or repo.active_branch.name != branch
                or repo.is_dirty(untracked_files=False)
            ):
                return False
        except TypeError:
            return False
        try:
            self.git("merge", "--ff-only", f"{self.remote}/{branch}")
        except ForgeError:
            return False
        return True


def _bot_env() -> dict[str, str]:
    return {
        "GIT_AUTHOR_NAME": BOT_NAME,
        "GIT_AUTHOR_EMAIL": BOT_EMAIL,
        "GIT_COMMITTER_NAME": BOT_NAME,
        "GIT_COMMITTER_EMAIL": BOT_EMAIL,
        "GIT_TERMINAL_PROMPT": "0",
    }
