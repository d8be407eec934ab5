// SPDX-License-Identifier: MIT
// provision: the umbrella header. Include this one.
//
// A header-only toolkit that provisions AI model files (Hugging Face, CivitAI,
// Google Drive, plain URLs) into a web UI's model folders.
#ifndef PROVISION_PROVISION_HPP
#define PROVISION_PROVISION_HPP

#include "version.hpp"
#include "error.hpp"
#include "url.hpp"
#include "config.hpp"
#include "layout.hpp"
#include "http.hpp"
#include "plan.hpp"
#include "events.hpp"
#include "gdrive.hpp"
#include "sources.hpp"
#include "downloader.hpp"
#include "lockfile.hpp"
#include "provisioner.hpp"

#endif
