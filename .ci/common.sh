# Shared by .ci/colab-env and .ci/lowest-env (sourced): the env's pip, and the Python to build it with.

pip() { # the env's pip ($venv), without the machine's notes on local indexes that lack a package
    "$venv/bin/python" -m pip "$@" 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
}

find_python() { # VERSION OVERRIDE LABEL: $OVERRIDE, else pythonVERSION on PATH, else pyenv's newest VERSION*
    local want=$1 override=$2 label=$3 candidate
    for candidate in "$override" "$(command -v "python$want" || true)" \
        $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$want"*/bin/python 2>/dev/null | sort -V -r); do
        if [ -n "$candidate" ] && [ -x "$candidate" ] &&
            [ "$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$want" ]; then
            echo "$candidate"
            return
        fi
    done
    echo "$label env: no Python $want found (set ${label^^}_PYTHON, or: pyenv install $want)" >&2
    exit 1
}
