// moat console: progressive enhancement only. Every page works without this file.
"use strict";

// "Copy" buttons next to secrets and snippets: data-copy names the element whose text to copy.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source || !navigator.clipboard) return;
  navigator.clipboard.writeText(source.textContent.trim()).then(() => {
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  });
});

// Copy buttons are hidden until the script can make them work.
document.documentElement.classList.add("js");
