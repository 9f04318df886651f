import { mkdirSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { expect } from 'vitest';
import { SCREENSHOT_DIR } from './browser.js';

/**
 * Layout facts a person checks on a page at 1280 px, read from the rendered page: nothing makes
 * the page or its main card scroll sideways, and no table column is narrower than its heading
 * (the Images table once squeezed its path column to one character per line). Empty when all hold.
 */
export async function layoutProblems(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const problems: string[] = [];
    const root = document.documentElement;
    if (root.scrollWidth > root.clientWidth + 1) {
      problems.push(`the page scrolls sideways: ${root.scrollWidth}px wide in a ${root.clientWidth}px window`);
    }
    const main = document.querySelector('main');
    if (main && main.scrollWidth > main.clientWidth + 1) {
      problems.push(`the main card overflows: ${main.scrollWidth}px of content in ${main.clientWidth}px`);
    }
    const context = document.createElement('canvas').getContext('2d');
    if (!context) return [...problems, 'no canvas to measure text with'];
    for (const table of Array.from(document.querySelectorAll('table'))) {
      const name = table.getAttribute('aria-label') ?? '(unnamed table)';
      const card = main?.getBoundingClientRect();
      if (card && table.getBoundingClientRect().right > card.right + 1)
        problems.push(`table ${name} sticks out of its card`);
      for (const heading of Array.from(table.querySelectorAll('thead th')) as HTMLTableCellElement[]) {
        // A column of buttons is named for screen readers only: nothing to read on screen.
        if (heading.querySelector('.visually-hidden')) continue;
        const text = (heading.textContent ?? '').trim();
        if (!text) continue;
        const style = getComputedStyle(heading);
        context.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
        const shown = style.textTransform === 'uppercase' ? text.toUpperCase() : text;
        const needed = context.measureText(shown).width + (Number.parseFloat(style.letterSpacing) || 0) * shown.length;
        const inner =
          heading.clientWidth - Number.parseFloat(style.paddingLeft) - Number.parseFloat(style.paddingRight);
        if (inner + 1 < needed) {
          problems.push(
            `column "${text}" of ${name} is ${Math.round(inner)}px wide, narrower than its heading (${Math.ceil(needed)}px)`,
          );
        }
      }
    }
    return problems;
  });
}

/** A 1280×800 picture of what the window shows, kept with the test's artifacts. */
export async function windowShot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const path = `${SCREENSHOT_DIR}${name}.png`;
  await page.screenshot({ path, fullPage: false });
  return path;
}

/**
 * Every page, wizard step and dialog: a 1280×800 picture kept as an artifact, and the layout facts
 * a person would check at that width (no sideways scrolling, no column narrower than its heading).
 */
export async function shot(page: Page, name: string): Promise<void> {
  await windowShot(page, name);
  expect(await layoutProblems(page), `layout of ${name}`).toEqual([]);
}
