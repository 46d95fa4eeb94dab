from crypto_assets.cli import run

run()
