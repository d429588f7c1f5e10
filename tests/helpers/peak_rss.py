"""The peak RSS of a child process, measured by the child itself.

``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is not that: Linux carries the parent's high-water mark
across fork and exec, so a child of a large pytest-xdist worker reports the worker's peak. ``VmHWM`` in
``/proc/self/status`` belongs to the process's own address space, which exec makes new.

Child scripts run with ``python -c`` embed ``SOURCE`` and call ``peak_rss_kib()``.
"""

SOURCE = '''
def peak_rss_kib():
    try:
        with open('/proc/self/status') as status:
            for line in status:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
'''

exec(SOURCE)  # pylint: disable=exec-used  # the same function for this process, from the one source
