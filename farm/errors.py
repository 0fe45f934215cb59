"""One error hierarchy for farm.

    FarmError                      anything farm raises on purpose
    ├── UserError                  the user can fix it; the CLI exits 2 with one line, no traceback
    │   ├── InputError             the source video is missing, not a video, corrupt or empty
    │   ├── StyleError             unknown style name, bad blend, bad strength, bad model file
    │   ├── ConfigError            a YAML or option that does not validate (names the file and key)
    │   └── JobError               a bad job id, or a changed spec under an existing job id
    └── InternalError              something broke on our side or in the infrastructure; exit 1
        ├── StoreError             the object store failed after its retries
        │   ├── MissingObjectError a key that should be there is not (a get on an absent object)
        │   └── ChunkCorruptError  an output chunk's bytes do not match its receipt
        ├── CodecError             an encoder or muxer failed on frames we produced
        └── ChunkFailedError       a chunk kept failing after its bounded attempts

Keep the leaves few: add one only when a caller needs to tell it apart.
"""

from __future__ import annotations


class FarmError(Exception):
    """Base of every error farm raises on purpose."""

    exit_code = 1


class UserError(FarmError):
    """Bad input or usage: exit 2, one line on stderr."""

    exit_code = 2


class InputError(UserError):
    """The source video cannot be used."""


class StyleError(UserError):
    """The requested style or model cannot be used."""


class ConfigError(UserError):
    """A configuration file or option does not validate."""


class JobError(UserError):
    """A job id is invalid or conflicts with an existing job."""


class InternalError(FarmError):
    """A failure that is not the user's fault: exit 1."""


class StoreError(InternalError):
    """The object store failed (after retries)."""


class MissingObjectError(StoreError):
    """A get asked for a key that is not in the store; callers may rebuild it instead of failing."""


class CodecError(InternalError):
    """Encoding or muxing failed."""


class ChunkFailedError(InternalError):
    """A chunk failed on every attempt; the job stays resumable."""

    def __init__(self, chunk: int, attempts: int, cause: str):
        super().__init__(f"chunk {chunk} failed {attempts} times: {cause}")
        self.chunk = chunk
        self.attempts = attempts
        self.cause = cause


class ChunkCorruptError(StoreError):
    """An output chunk's bytes do not match its receipt: it is rendered again, never muxed in."""

    def __init__(self, chunk: int, key: str):
        super().__init__(f"output chunk {chunk} ({key}) does not match its checksum")
        self.chunk = chunk
        self.key = key
