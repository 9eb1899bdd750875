# Sourced by tests/run.sh and deploy/local/up.sh: installs the Debian packages the
# project needs when they are missing (as root), or says which ones to install.
saga_packages=(build-essential cmake pkg-config git python3 clang clang-format libclang-rt-14-dev
    libuv1-dev libprotobuf-c-dev protobuf-c-compiler libcmocka-dev libpq-dev libjansson-dev
    postgresql-15 postgresql-client-15)

saga_install_packages() {
    local missing=() p
    for p in "${saga_packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    if [[ $(id -u) -ne 0 ]]; then
        echo "missing packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
        return 1
    fi
    echo "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
}
