"""The one place the Dagster definitions are assembled: the modules of ``crypto_assets.defs``, listed here, and
the policies every asset shares (owners, freshness), applied once over all asset specs.

Listed rather than discovered: ``dg.load_defs`` is deprecated, and its successor ``dg.load_from_defs_folder``
needs the project's pyproject.toml, which an installed package does not have. A test fails when a module
of ``defs/`` is left out. As ``load_defs`` did, Dagster's beta/preview warnings are not shown while the
modules load: single-run backfills (``BackfillPolicy``) are beta in Dagster 1.13 and used on purpose.
"""

import warnings

import dagster as dg

from crypto_assets.defs.common import FRESHNESS, OWNERS

with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)
    warnings.simplefilter("ignore", dg.PreviewWarning)
    from crypto_assets.defs import (
        alerting,
        automation,
        features,
        housekeeping,
        ml,
        news,
        prices,
        quality,
        quality_scores,
        resources,
        runtime,
    )

    DEFINITION_MODULES = (prices, news, features, ml, quality, quality_scores, automation, alerting, housekeeping)
    defs: dg.Definitions = dg.Definitions.merge(
        dg.load_definitions_from_modules(list(DEFINITION_MODULES)),
        resources.resource_definitions(),
        runtime.runtime_definitions(),
    ).map_resolved_asset_specs(
        func=lambda spec: dg.apply_freshness_policy(spec, FRESHNESS).replace_attributes(owners=OWNERS)
    )
