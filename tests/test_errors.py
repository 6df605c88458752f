"""genomamba.errors: exit codes and the recognition of failed memory allocations without torch."""

from __future__ import annotations

import sys
import types

from genomamba import errors


def test_exit_codes_follow_sysexits():
    codes = (errors.EXIT_DATA, errors.EXIT_UNAVAILABLE, errors.EXIT_CANTCREAT, errors.EXIT_IOERR)
    assert codes == (65, 69, 73, 74)
    assert errors.EXIT_BROKEN_PIPE == 128 + 13  # SIGPIPE


def test_out_of_memory_errors_are_recognised_through_the_loaded_torch_only(monkeypatch):
    fake_torch = types.ModuleType("torch")

    class OutOfMemoryError(RuntimeError):
        pass

    fake_torch.OutOfMemoryError = OutOfMemoryError
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    assert errors.is_out_of_memory(OutOfMemoryError("CUDA error"))
    assert errors.is_out_of_memory(MemoryError())
    assert errors.is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried ..."))
    assert not errors.is_out_of_memory(RuntimeError("shapes do not match"))
    assert not errors.is_out_of_memory(ValueError("out of memory"))
    monkeypatch.delitem(sys.modules, "torch")
    assert not errors.is_out_of_memory(OutOfMemoryError("no torch loaded, no torch error"))
    assert "torch" not in sys.modules  # asking did not import it


def test_out_of_memory_detail_is_one_short_phrase():
    detail = errors.out_of_memory_detail
    cuda = RuntimeError(
        "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.10 GiB of which "
        "1.20 GiB is free. Including non-PyTorch memory, this process has 77.80 GiB memory in use.\n"
        "See documentation for Memory Management")
    assert detail(cuda) == ("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
                            "79.10 GiB of which 1.20 GiB is free.", True)
    cpu = RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1536 bytes.")
    assert detail(cpu) == ("could not allocate 1.5 KiB", False)
    assert detail(MemoryError()) == ("", False)


def test_sizes_read_the_same_in_every_message():
    assert errors.format_bytes(512) == "512 bytes"
    assert errors.format_bytes(3 << 30) == "3.0 GiB"
    assert errors.format_bytes(-(1 << 20)) == "-1.0 MiB"  # a shortfall
    assert errors.format_bytes(2000 * (1 << 40)) == "2,000.0 TiB"
