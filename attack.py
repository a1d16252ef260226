import asyncio, sys, subprocess
from playwright.async_api import async_playwright
CH = subprocess.check_output(["bash","-c","command -v chromium"]).decode().strip()
async def main():
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CH, args=["--no-sandbox"])
        for url in sys.argv[1:]:
            pg = await b.new_page()
            pg.on("console", lambda m: print(f"  console.{m.type}: {m.text[:200]}"))
            await pg.goto(url); await pg.wait_for_function("window.done === true", timeout=15000)
            print(url); [print("  ", r) for r in await pg.evaluate("window.results")]
            for f in pg.frames[1:]:
                try: print("   frame", f.url, (await f.content())[:150].replace("\n"," "))
                except Exception as e: print("   frame", f.url, "ERR", str(e)[:100])
        await b.close()
asyncio.run(main())
