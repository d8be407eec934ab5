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
#include "config/config.hpp"
#include "layout/layout.hpp"
#include "http/client.hpp"
#include "plan.hpp"
#include "events.hpp"
#include "sources/gdrive/gdrive.hpp"
#include "sources/sources.hpp"
#include "engine/downloader.hpp"
#include "lockfile/lockfile.hpp"
#include "provisioner.hpp"

#endif
